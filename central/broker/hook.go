package broker

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hook is the broker's authentication and ACL: mochi asks it at every
// CONNECT (OnConnectAuthenticate), SUBSCRIBE and PUBLISH, and before every
// delivery (OnACLCheck), and lets it rewrite publishes (OnPublish, to keep
// retained messages to the status topics).
type hook struct {
	mqtt.HookBase
	rules       rules
	creds       Credentials
	centralUser string
	centralSum  [32]byte // sha256 of the central password: equal-length input for the constant-time compare
	anonymous   bool
	log         *slog.Logger
	// checks bounds concurrent argon2id verifications (19 MiB each) of
	// hashes stored before gate passwords were hashed with SHA-256, so a
	// reconnect storm or a flood of guesses costs bounded memory and CPU.
	checks chan struct{}
	// decoy is a hash checked for unknown gates, so that a refusal takes
	// as long as for a gate with a current (SHA-256) hash.
	decoy []byte
	// dropped counts messages mochi dropped because a client's write
	// queue (maxPending) was full; dropLogged is when that was last said.
	dropped    atomic.Int64
	dropMu     sync.Mutex
	dropLogged time.Time
}

func newHook(r rules, creds Credentials, centralUser, centralPassword string, anonymous bool, checks int, log *slog.Logger) *hook {
	return &hook{
		rules:       r,
		creds:       creds,
		centralUser: centralUser,
		centralSum:  sha256.Sum256([]byte(centralPassword)),
		anonymous:   anonymous,
		log:         log,
		checks:      make(chan struct{}, checks),
		decoy:       decoyHash,
	}
}

var decoyHash, _ = HashToken("decoy password for unknown gates")

// ID names the hook in mochi's logs.
func (h *hook) ID() string { return "parkgate-auth" }

// Provides tells mochi which events the hook handles.
func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnPublishDropped}, []byte{b})
}

// OnPublishDropped says, at most once a second, that messages were dropped
// for a client whose write queue was full: the sync repairs the loss (a
// gate resends an event until central acks it; a gate that missed a
// change resyncs), but a full queue means a client that does not read, or
// a burst larger than maxPending, and an operator should know.
func (h *hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	n := h.dropped.Add(1)
	h.dropMu.Lock()
	defer h.dropMu.Unlock()
	if now := time.Now(); now.Sub(h.dropLogged) >= time.Second {
		h.dropLogged = now
		h.log.Warn("mqtt: a client's write queue is full; messages to it are dropped", "client", cl.ID, "topic", pk.TopicName, "dropped_total", n, "queue", maxPending)
	}
}

// roleOf maps an authenticated connection to its rights. The username was
// checked at CONNECT, so it identifies the client for the connection's
// whole life.
func (h *hook) roleOf(cl *mqtt.Client) (role, bool) {
	user := string(cl.Properties.Username)
	switch {
	case user == h.centralUser:
		return role{}, true
	case user == "":
		return role{}, h.anonymous
	case idPattern.MatchString(user):
		return role{gate: user}, true
	}
	return role{}, false
}

// OnConnectAuthenticate accepts centrald's user with its password, a
// provisioned gate with its password, and (only with AllowAnonymous) a
// client without a username. A client that gives a username is always
// checked, even when anonymous access is on: a wrong password is an error
// to report, not a reason to fall back to anonymous rights.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	refuse := func(reason string) bool {
		h.log.Warn("mqtt connection refused", "user", user, "client", cl.ID, "remote", cl.Net.Remote, "reason", reason)
		return false
	}
	var ro role
	switch {
	case user == "":
		if !h.anonymous {
			return refuse("no credentials (mqtt.allow_anonymous is off)")
		}
	case user == h.centralUser:
		sum := sha256.Sum256(pk.Connect.Password)
		if subtle.ConstantTimeCompare(sum[:], h.centralSum[:]) != 1 {
			return refuse("bad password")
		}
	default:
		if !idPattern.MatchString(user) {
			return refuse("username is not a gate id")
		}
		hash, ok, err := h.creds.Lookup(user)
		if err != nil {
			h.log.Error("mqtt credentials lookup failed", "gate", user, "err", err)
			return refuse("credentials unavailable")
		}
		if !ok {
			h.check(h.decoy, pk.Connect.Password)
			return refuse("unknown gate")
		}
		if !h.check(hash, pk.Connect.Password) {
			return refuse("bad password")
		}
		h.upgrade(user, hash, pk.Connect.Password)
		// A client id is a session: connecting with another client's id
		// disconnects it. Tying a gate to its own id keeps one gate from
		// kicking another gate (or centrald) off the broker.
		// Refused like a wrong password on the wire (CONNACK 5): MQTT
		// 3.1.1 has no better code, and 2 (identifier rejected) would
		// tell a stranger the password was right. The log says it.
		if cl.ID != user {
			h.log.Warn("mqtt connection refused", "user", user, "client", cl.ID, "remote", cl.Net.Remote,
				"reason", "client id mismatch: the password is right, but a gate's MQTT client id must be its gate id",
				"want_client", user)
			return false
		}
		ro = role{gate: user}
	}
	if w := pk.Connect; w.WillFlag {
		if ro.gate != "" && w.WillTopic != h.rules.statusTopic(ro.gate) {
			return refuse("a gate's will must be its own status topic")
		}
		if !h.rules.canPublish(ro, w.WillTopic) {
			return refuse("will topic not allowed")
		}
		if w.WillRetain && !h.rules.isStatusTopic(w.WillTopic) {
			return refuse("a retained will is allowed on status topics only")
		}
	}
	return true
}

// check verifies a gate password; argon2id hashes at most cap(h.checks)
// at a time.
func (h *hook) check(hash, pw []byte) bool {
	if !IsTokenHash(hash) {
		h.checks <- struct{}{}
		defer func() { <-h.checks }()
	}
	return CheckPassword(hash, string(pw))
}

// upgrade replaces a gate's argon2id hash, just verified against pw, by
// its SHA-256 form, if the credentials store can (Upgrader). Gate
// passwords have always been generated with 192 random bits, so the
// faster form is as strong. A failure only costs speed: it is logged and
// the gate is let in, as its password was right.
func (h *hook) upgrade(gateID string, hash, pw []byte) {
	u, ok := h.creds.(Upgrader)
	if !ok || IsTokenHash(hash) {
		return
	}
	fast, err := HashToken(string(pw))
	if err != nil {
		return // shorter than a generated password: not one of ours, keep argon2id
	}
	if err := u.Upgrade(gateID, hash, fast); err != nil {
		h.log.Warn("mqtt: could not store the gate's faster password hash; it keeps the argon2id one", "gate", gateID, "err", err)
		return
	}
	h.log.Info("mqtt: gate password hash upgraded from argon2id to sha256", "gate", gateID)
}

// OnACLCheck applies docs/sync.md's ACL; write is a publish, otherwise
// topic is a subscription filter or the topic of a message about to be
// delivered.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	ro, ok := h.roleOf(cl)
	if !ok {
		return false
	}
	var allowed bool
	if write {
		allowed = h.rules.canPublish(ro, topic)
	} else {
		allowed = h.rules.canRead(ro, topic)
	}
	if !allowed && ro.gate != "" {
		// Deliveries are checked too, but a gate only gets messages its
		// allowed filters match, so a refusal here is a gate trying to
		// reach another gate's topics: worth an operator's attention.
		h.log.Warn("mqtt access denied", "gate", ro.gate, "topic", topic, "publish", write)
	}
	return allowed
}

// OnPublish drops the retain flag outside the status topics, so that no
// command, ack or event is ever replayed to a later subscriber. The
// message itself still goes through: refusing it would, for an MQTT 3.1.1
// client at QoS 1, leave it waiting for a PUBACK that never comes.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain && !h.rules.isStatusTopic(pk.TopicName) {
		h.log.Warn("mqtt retain flag dropped: only status topics are retained", "user", string(cl.Properties.Username), "topic", pk.TopicName)
		pk.FixedHeader.Retain = false
	}
	return pk, nil
}
