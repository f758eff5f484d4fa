package nemesis

import (
	"context"
	"time"

	"github.com/snapkeep/snapkeep/client"
)

// leaderChurnFault: TransferLeadership every 1-2 s until the heal.
type leaderChurnFault struct{}

func (leaderChurnFault) kind() string { return LeaderChurn }

func (leaderChurnFault) inject(ctx context.Context, n *Nemesis, start startFunc) func() {
	start("leader", "TransferLeadership every 1-2 s")
	done := make(chan struct{})
	stopped := make(chan int)
	// The run's loop sleeps until the heal, so this goroutine has the random source to
	// itself meanwhile.
	go func() {
		transfers := 0
		cl, err := n.C.Client(context.WithoutCancel(ctx))
		if err == nil {
			defer cl.Close()
		}
		for err == nil {
			select {
			case <-done:
				stopped <- transfers
				return
			case <-time.After(time.Duration(1000+n.rng.IntN(1000)) * time.Millisecond):
			}
			tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, terr := cl.TransferLeadership(tctx, client.NewTransferLeadershipOption()); terr == nil {
				transfers++
			}
			cancel()
		}
		<-done
		stopped <- transfers
	}()
	return func() {
		close(done)
		n.Log("nemesis: leader-churn: %d transfers", <-stopped)
	}
}
