package nemesis

import (
	"context"
	"fmt"
	"time"

	"github.com/snapkeep/snapkeep/jepsen/s3proxy"
)

// s3Fault: the S3 proxy answers a share of requests 503 SlowDown, holds others, and
// cuts a share of object reads off half-way. The first s3 fault of a run only cuts
// reads (a fifth of them): with no request held, the reads cut are seen by callers
// that finish within the fault, so a short run sees them too.
type s3Fault struct{}

func (s3Fault) kind() string { return S3Faults }

func (s3Fault) inject(_ context.Context, n *Nemesis, start startFunc) func() {
	fl := s3proxy.Faults{SlowDownRate: 0.2, HoldRate: 0.1, Hold: 15 * time.Second, CutRate: 0.1}
	if !n.s3Faulted {
		n.s3Faulted = true
		fl = s3proxy.Faults{CutRate: 0.2}
	}
	n.C.S3.Set(fl)
	start("s3", fmt.Sprintf("%.0f%% 503 SlowDown, %.0f%% held %v, %.0f%% of object reads cut off half-way",
		fl.SlowDownRate*100, fl.HoldRate*100, fl.Hold, fl.CutRate*100))
	before := n.C.S3.Injected.Load()
	return func() {
		n.C.S3.Set(s3proxy.Faults{})
		n.Log("nemesis: s3-faults: %d requests faulted", n.C.S3.Injected.Load()-before)
	}
}
