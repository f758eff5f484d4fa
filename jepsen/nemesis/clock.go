package nemesis

import (
	"context"
	"fmt"
	"time"
)

// clockSkews are the offsets the clock fault picks from: seconds to days, both ways.
var clockSkews = []time.Duration{
	2 * time.Second, -2 * time.Second, 90 * time.Second, -90 * time.Second,
	time.Hour, -time.Hour, 26 * time.Hour, -26 * time.Hour, 72 * time.Hour, -72 * time.Hour,
}

// clockFault skews one node's wall clock (a faultinject build's clock file; the
// process is not touched): the leader half of the time; the first time always, by an
// hour or more (a short --bug run must meet a large skew on the leader). Half
// the time the skewed leader is also killed (-9) 1-3 s in and restarted a second
// later with its clock still skewed, so a leader change happens from a wrong clock
// and the node comes back with it. The heal sets the clock right.
type clockFault struct{}

func (clockFault) kind() string { return Clock }

func (clockFault) inject(ctx context.Context, n *Nemesis, start startFunc) func() {
	first := !n.clockSkewed
	onLeader := first || n.rng.IntN(2) == 0
	n.clockSkewed = true
	id := n.random()
	if onLeader {
		id = n.leader(ctx)
	}
	skew := clockSkews[n.rng.IntN(len(clockSkews))]
	if first {
		skew = clockSkews[4+n.rng.IntN(len(clockSkews)-4)] // an hour or more
	}
	failover := onLeader && n.rng.IntN(2) == 0
	killAfter := time.Duration(1000+n.rng.IntN(2000)) * time.Millisecond
	note := fmt.Sprintf("clock %+v", skew)
	if onLeader {
		note += " on the leader"
	}
	if failover {
		note += fmt.Sprintf(", kill -9 it after %v and restart it 1 s later", killAfter)
	}
	start(id, note)
	if err := n.C.SetClock(id, skew); err != nil {
		n.Log("nemesis: clock %s: %v", id, err)
	}
	done := make(chan struct{})
	if failover {
		go func() {
			defer close(done)
			if !sleep(ctx, killAfter) {
				return
			}
			if err := n.C.Kill(id); err != nil {
				n.Log("nemesis: clock: kill %s: %v", id, err)
			}
			sleep(context.WithoutCancel(ctx), time.Second)
			if err := n.C.Restart(id); err != nil {
				n.Log("nemesis: clock: restart %s: %v", id, err)
			}
		}()
	} else {
		close(done)
	}
	return func() {
		<-done
		if err := n.C.SetClock(id, 0); err != nil {
			n.Log("nemesis: clock %s: heal: %v", id, err)
		}
		// A node killed and not restarted (ctx ended first) is started by the run's
		// final heal.
	}
}
