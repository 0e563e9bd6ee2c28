package broker

import (
	"regexp"
	"strings"
)

// idPattern is the syntax of site and gate ids (the same rule as the
// daemons' configuration): they become topic levels, so '/', '+', '#',
// '$' and empty ids must never get through.
var idPattern = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// gateTopics are the topics under gates/{gate}/ a gate may publish to
// (docs/sync.md).
var gateTopics = []string{"status", "events", "sync", "result"}

// role is what an authenticated connection may do.
type role struct {
	gate string // the gate id; empty for site-wide access (centrald, anonymous)
}

// rules are the ACL of docs/sync.md for one site.
type rules struct {
	prefix string // "parking/{site}/"
}

func newRules(site string) rules { return rules{prefix: "parking/" + site + "/"} }

// statusTopic is a gate's presence topic, the only one its will may use.
func (r rules) statusTopic(gate string) string {
	return r.prefix + "gates/" + gate + "/status"
}

// canPublish reports whether ro may publish to topic (a topic name,
// without wildcards: mochi has checked that already).
func (r rules) canPublish(ro role, topic string) bool {
	if ro.gate == "" {
		return len(topic) > len(r.prefix) && strings.HasPrefix(topic, r.prefix)
	}
	for _, t := range gateTopics {
		if topic == r.prefix+"gates/"+ro.gate+"/"+t {
			return true
		}
	}
	return false
}

// canRead reports whether ro may subscribe to filter, or receive a message
// on a topic (mochi asks both: at SUBSCRIBE with the filter, and before
// every delivery with the topic name). A filter is allowed only when every
// topic it can match is allowed, which for our rules means: the allowed
// root must appear as literal levels at its start, and only the levels
// after the root may be wildcards. So "parking/s/gates/+/in/#" (other
// gates' inboxes) and "parking/s/#" are refused to a gate, "#" and $SYS
// to everyone.
func (r rules) canRead(ro role, filter string) bool {
	if ro.gate == "" {
		// Shared subscriptions let several centrald workers split the
		// gates' events; the group name is not a topic level.
		if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
			_, f, ok := strings.Cut(rest, "/")
			if !ok {
				return false
			}
			filter = f
		}
		return under(filter, strings.TrimSuffix(r.prefix, "/"))
	}
	// Gates get neither $SYS nor shared subscriptions: both start with '$',
	// which no allowed root does.
	return under(filter, r.prefix+"gates/"+ro.gate+"/in") || under(filter, r.prefix+"central")
}

// under reports whether filter lies within root/# (root itself included,
// as MQTT's '#' includes the parent level). root has no wildcards, so a
// plain string comparison of the leading levels is exact: a wildcard in
// one of them cannot compare equal.
func under(filter, root string) bool {
	return filter == root || strings.HasPrefix(filter, root+"/")
}

// isStatusTopic reports whether topic is a presence topic, the only topics
// on which messages may be retained: everything else (commands above all)
// must never be replayed to a later subscriber.
func (r rules) isStatusTopic(topic string) bool {
	rest, ok := strings.CutPrefix(topic, r.prefix)
	if !ok {
		return false
	}
	if rest == "central/status" {
		return true
	}
	gate, ok := strings.CutPrefix(rest, "gates/")
	if !ok {
		return false
	}
	gate, ok = strings.CutSuffix(gate, "/status")
	return ok && idPattern.MatchString(gate)
}
