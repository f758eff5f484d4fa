package nemesis

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/client"
)

// memberFault: kill -9 the leader or a random node and remove it from the Raft
// configuration; at heal start it again, with its data or wiped as a new server, and
// wait until it is a voter again.
type memberFault struct{}

func (memberFault) kind() string { return Member }

func (memberFault) inject(ctx context.Context, n *Nemesis, start startFunc) func() {
	id := n.random()
	if n.rng.IntN(2) == 0 {
		id = n.leader(ctx)
	}
	wipe := n.rng.IntN(2) == 0
	plan := "kill -9, RemoveNode, at heal restart with its data dir"
	if wipe {
		plan = "kill -9, RemoveNode, at heal wipe its data dir and start it as a new server (no --peers)"
	}
	f := start(id, plan+"; wait until it is a voter again")
	if err := n.C.Kill(id); err != nil {
		n.Log("nemesis: kill %s: %v", id, err)
	}
	// Not cut short by the end of the run: the heal must know whether it was removed.
	removed, err := n.removeNode(context.WithoutCancel(ctx), id)
	note := "removed"
	if err != nil {
		note = "not removed: " + err.Error()
		n.Log("nemesis: member: remove %s: %v", id, err)
		// A voter still in the configuration must keep its log (and its votes).
		wipe = false
	}
	n.H.AddNote(f, fmt.Sprintf("%s after %v", note, removed.Round(time.Millisecond)))
	return func() {
		restart, how := n.C.Restart, "with its data"
		if wipe {
			restart, how = n.C.RestartFresh, "wiped"
		}
		if err := restart(id); err != nil {
			n.Log("nemesis: member: restart %s %s: %v", id, how, err)
			n.H.AddNote(f, fmt.Sprintf("restart %s failed: %v", how, err))
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		began := time.Now()
		if err := n.C.WaitVoters(wctx); err != nil {
			n.Log("nemesis: member: %s restarted %s: %v", id, how, err)
			n.H.AddNote(f, fmt.Sprintf("restarted %s; not a voter again within 60 s", how))
			return
		}
		n.Log("nemesis: member: %s restarted %s, a voter again after %v", id, how, time.Since(began).Round(time.Millisecond))
		n.H.AddNote(f, fmt.Sprintf("restarted %s; a voter again after %v", how, time.Since(began).Round(time.Millisecond)))
	}
}

// removeNode asks the leader to remove id until it does or 30 s pass. The leader
// refuses while gossip still reports the killed node alive (a few seconds), and
// refuses to remove itself: a killed leader is removed once the others elected a new
// one. It returns how long it took.
func (n *Nemesis) removeNode(ctx context.Context, id string) (time.Duration, error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := n.C.Client(ctx)
	if err != nil {
		return time.Since(began), fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cl.RemoveNode(cctx, client.NewRemoveNodeOption(id))
		ccancel()
		if err == nil || status.Code(err) == codes.NotFound { // NotFound: an earlier attempt removed it
			return time.Since(began), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(began), fmt.Errorf("RemoveNode %s: %w", id, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
