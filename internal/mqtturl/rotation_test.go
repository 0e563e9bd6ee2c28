package mqtturl

import (
	"net/url"
	"slices"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// servers returns the nodes in the order paho will try them.
func servers(o *paho.ClientOptions) []string {
	var s []string
	for _, u := range o.Servers {
		s = append(s, u.String())
	}
	return s
}

// attempt is paho trying a node: what it calls before each TCP dial.
func attempt(t *testing.T, o *paho.ClientOptions, node string) {
	t.Helper()
	u, err := url.Parse(node)
	if err != nil {
		t.Fatal(err)
	}
	o.OnConnectAttempt(u, nil)
}

func TestRotationStartsAfterTheNodeLastTried(t *testing.T) {
	nodes := []string{"tcp://10.0.0.1:1883", "tcp://10.0.0.2:1883", "tcp://10.0.0.3:1883"}
	r := NewRotation(nodes)

	o := paho.NewClientOptions()
	r.Apply(o)
	if got := servers(o); !slices.Equal(got, nodes) {
		t.Fatalf("first attempt tries %v, want the operator's order %v", got, nodes)
	}
	// Connected to node 2 (node 1 did not answer); that connection is lost.
	attempt(t, o, nodes[0])
	attempt(t, o, nodes[1])
	if r.Tried() != nodes[1] {
		t.Errorf("Tried = %q, want %q", r.Tried(), nodes[1])
	}
	r.Done()
	if r.Next() != nodes[2] {
		t.Errorf("Next = %q after losing node 2, want node 3", r.Next())
	}
	o = paho.NewClientOptions()
	r.Apply(o)
	if got, want := servers(o), []string{nodes[2], nodes[0], nodes[1]}; !slices.Equal(got, want) {
		t.Errorf("after losing node 2 the attempt tries %v, want %v", got, want)
	}
	if r.Tried() != "" {
		t.Errorf("a new attempt starts with Tried = %q, want none", r.Tried())
	}
	// An attempt that tried nothing (cancelled before dialling) moves
	// nothing.
	r.Done()
	if r.Next() != nodes[2] {
		t.Errorf("Next = %q after an attempt that tried nothing, want node 3 still", r.Next())
	}
	// Every node failed, the last tried being node 2: the next attempt
	// starts with node 3 again, not with a node that just failed.
	o = paho.NewClientOptions()
	r.Apply(o)
	for _, n := range servers(o) {
		attempt(t, o, n)
	}
	r.Done()
	if r.Next() != nodes[2] {
		t.Errorf("Next = %q after all failed ending with node 2, want node 3", r.Next())
	}
}
