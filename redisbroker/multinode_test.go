package redisbroker_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
)

// TestMultiNodeExactlyOnce: three nodes, two clients subscribed on each; every node
// publishes 500 messages at once. Every client gets every message exactly once, and the
// messages of each node in the order it published them.
func TestMultiNodeExactlyOnce(t *testing.T) {
	addr := needRedis(t)
	nodes := startNodes(t, addr, uniquePrefix(t), 3, wspub.Options{})
	var clients []*wstest.Conn
	for _, n := range nodes {
		for range 2 {
			c := dial(t, n.url)
			c.Subscribe("news", "s")
			clients = append(clients, c)
		}
	}

	const perNode = 500
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perNode {
				if err := n.hub.Publish(ctx, "news", wspub.Message{Type: "m", Data: fmt.Sprintf("%d-%d", i, j)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	for ci, c := range clients {
		next := make([]int, len(nodes)) // the next message expected from each node
		for range perNode * len(nodes) {
			var n, i int
			_, err := fmt.Sscanf(wstest.Data[string](t, c.Expect("m")), "%d-%d", &n, &i)
			require.NoError(t, err)
			require.Equal(t, next[n], i, "client %d: messages of node %d out of order", ci, n)
			next[n]++
		}
		c.NothingPending("nothing-more") // no duplicate is waiting behind the last message
	}
	for i, n := range nodes {
		st := n.hub.Stats()
		assert.True(t, st.BrokerUp, "node %d", i)
		assert.Equal(t, uint64(2*perNode), st.BrokerReceived, "node %d receives the other two nodes' messages", i)
		assert.Zero(t, st.BrokerErrors, "node %d", i)
		assert.Zero(t, st.BrokerInvalid, "node %d", i)
		assert.Zero(t, st.BrokerOutages, "node %d", i)
	}
}

// TestMultiNodeInterest: a node holds a Redis subscription to a channel while it has local
// subscribers, and drops it when the last one leaves (unsubscribe or disconnect). The
// acknowledgements come after Redis has confirmed, so no polling is needed for them.
func TestMultiNodeInterest(t *testing.T) {
	addr := needRedis(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, addr)
	ctx := context.Background()
	numsub := func(channel string) int64 { return adminNumSub(t, admin, prefix+channel) }
	channels := func() []string {
		t.Helper()
		res, err := admin.PubSubChannels(ctx, prefix+"*").Result()
		require.NoError(t, err)
		return res
	}

	nodes := startNodes(t, addr, prefix, 3, wspub.Options{})
	a1, a2 := dial(t, nodes[0].url), dial(t, nodes[0].url)
	b := dial(t, nodes[1].url)
	c := dial(t, nodes[2].url)
	assert.Zero(t, numsub("room"))
	assert.NotContains(t, channels(), prefix+"room")
	for _, cl := range []*wstest.Conn{a1, a2, b, c} {
		cl.Subscribe("room", "s")
	}
	assert.Equal(t, int64(3), numsub("room"), "one Redis subscription per node, not per client")
	assert.Contains(t, channels(), prefix+"room")

	a2.Unsubscribe("room", "u")
	assert.Equal(t, int64(3), numsub("room"), "node 0 still has a subscriber")
	c.Unsubscribe("room", "u")
	assert.Equal(t, int64(2), numsub("room"), "node 2's last subscriber left")
	assert.Contains(t, channels(), prefix+"room")

	require.NoError(t, nodes[2].hub.Publish(ctx, "room", wspub.Message{Type: "hello"}))
	for _, cl := range []*wstest.Conn{a1, b} {
		cl.Expect("hello")
		cl.NothingPending("once")
	}
	for _, cl := range []*wstest.Conn{a2, c} {
		cl.NothingPending("nothing") // unsubscribed: the message did not come
	}

	require.NoError(t, b.WS.CloseNow())
	eventually(t, func() bool { return numsub("room") == 1 }, "a disconnect ends node 1's subscription")
	a1.Unsubscribe("room", "u")
	assert.Zero(t, numsub("room"))
	assert.NotContains(t, channels(), prefix+"room")
	for i, n := range nodes {
		assert.Zero(t, n.hub.Stats().BrokerErrors, "node %d", i)
	}
}

// TestMultiNodeUsersAndBroadcast: SendToUser reaches a user's connections on other
// nodes, Broadcast reaches every connection of every node, each exactly once.
func TestMultiNodeUsersAndBroadcast(t *testing.T) {
	addr := needRedis(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, addr)
	nodes := startNodes(t, addr, prefix, 3, wspub.Options{Authenticate: userFromQuery})
	const alice = "Alice Liddell ✓" // user IDs are free text: the hub's channel for it has spaces
	q := "?user=" + url.QueryEscape(alice)
	alice1 := dial(t, nodes[1].url+q)
	alice2 := dial(t, nodes[2].url+q)
	bob := dial(t, nodes[0].url+"?user=bob")

	// No waiting: once its handshake is done, a user is reachable from every node.
	ctx := context.Background()
	require.NoError(t, nodes[0].hub.SendToUser(ctx, alice, wspub.Message{Type: "note", Data: "for alice"}))
	for _, c := range []*wstest.Conn{alice1, alice2} {
		e := c.Expect("note")
		assert.Equal(t, "for alice", wstest.Data[string](t, e))
		assert.Empty(t, e.Channel)
	}
	require.NoError(t, nodes[2].hub.Broadcast(ctx, wspub.Message{Type: "all"}))
	for i, c := range []*wstest.Conn{alice1, alice2, bob} {
		assert.Equal(t, wstest.Msg{Type: "all"}, c.Next(), "client %d", i)
		c.NothingPending("once")
	}

	userChannels := func(suffix string) []string {
		res, err := admin.PubSubChannels(ctx, prefix+"*").Result()
		require.NoError(t, err)
		return slices.DeleteFunc(res, func(ch string) bool { return !strings.HasSuffix(ch, suffix) })
	}
	assert.Len(t, userChannels(" "+alice), 1, "alice's channel on the broker")
	require.NoError(t, alice1.WS.CloseNow())
	require.NoError(t, alice2.WS.CloseNow())
	eventually(t, func() bool { return len(userChannels(" "+alice)) == 0 },
		"the last connection of a user ends its subscription")
	assert.Len(t, userChannels(" bob"), 1)
}

// TestMultiNodeChannelNames: channel names with Unicode, ':', quotes and Redis glob
// characters travel between nodes unchanged, and a glob-like name is no pattern.
func TestMultiNodeChannelNames(t *testing.T) {
	addr := needRedis(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, addr)
	nodes := startNodes(t, addr, prefix, 2, wspub.Options{})
	names := []string{"café:☕", "a:b:c", "glob*", "a?[bc]*", `quo"te\`, "日本語/チャンネル", "🙂"}
	c := dial(t, nodes[1].url)
	for _, name := range names {
		c.Subscribe(name, "s")
	}
	ctx := context.Background()
	for _, name := range names {
		assert.Equal(t, int64(1), adminNumSub(t, admin, prefix+name), "%q", name)
	}
	// "globbing" would match the pattern "glob*", "a?[bc]*" would match "ab": not here.
	for _, name := range append([]string{"globbing", "ab"}, names...) {
		require.NoError(t, nodes[0].hub.Publish(ctx, name, wspub.Message{Type: "m", Data: name}))
	}
	for _, name := range names {
		e := c.Expect("m")
		assert.Equal(t, name, e.Channel)
		assert.Equal(t, name, wstest.Data[string](t, e))
	}
	c.NothingPending("nothing-more")
}

// adminNumSub is PUBSUB NUMSUB for one Redis channel.
func adminNumSub(t testing.TB, admin *redis.Client, channel string) int64 {
	t.Helper()
	res, err := admin.PubSubNumSub(context.Background(), channel).Result()
	require.NoError(t, err)
	return res[channel]
}
