package centralsync_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/sync/centralsync"

	"github.com/parkgate/parkgate/internal/syncbuf"
)

// noShared is allowAll but for shared subscriptions, which it refuses as
// NATS does (mochi itself has no switch for it).
type noShared struct{ allowAll }

func (*noShared) OnACLCheck(_ *mochi.Client, topic string, _ bool) bool {
	return !strings.HasPrefix(topic, "$share/")
}

// A broker without shared subscriptions (NATS answers $share/… with
// SUBACK 0x80; RabbitMQ closes the connection) and centrald left at
// mqtt.shared: true: the relay cannot connect, and its log says why and
// what to set, instead of only "retrying".
func TestBrokerWithoutSharedSubscriptionsSaysWhatToSet(t *testing.T) {
	b := startBrokerWith(t, "127.0.0.1:0", new(noShared))
	e := newCentral(t)
	logs := &syncbuf.Buffer{}
	cfg := centralsync.Config{Site: e.site, URL: b.url(), Shared: true, Heartbeat: 300 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	relay := centralsync.New(cfg, e.st, e.svc, clock.Real{}, slog.New(slog.NewTextHandler(logs, nil)))
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "the relay's log says to set mqtt.shared: false", func() bool {
		return strings.Contains(logs.String(), "set mqtt.shared: false")
	})
	if !strings.Contains(logs.String(), "the broker refused $share/"+centralsync.SharedGroup+"/") {
		t.Errorf("the log does not name the refused subscription:\n%s", logs.String())
	}
	if relay.Connected() {
		t.Error("the relay counts itself connected without its events subscription")
	}
}
