package nemesis

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// diskModes are the disk faults: every Raft write (log, term and vote, snapshots)
// failing with ENOSPC or EIO, or each taking 300 ms or 1.5 s longer.
var diskModes = []string{"enospc", "eio", "slow 300ms", "slow 1500ms"}

// The disk fault's notes: whether the node said so on /health while the fault lasted.
const (
	DiskReported    = "reported on /health"
	DiskNotReported = "never reported on /health"
	DiskExited      = "the process exited during the fault; restarted at heal"
)

// healthReasonLogWrite is the /health reason of a node that cannot write its Raft log
// (server: reasonLogWrite).
const healthReasonLogWrite = "log_write_error"

// diskFault fails or slows one node's Raft writes through a faultinject build's disk
// file: the leader half of the time, else a random node; the first time a follower's
// writes fail (ENOSPC or EIO: a short --bug run must meet one). While it lasts the nemesis
// reads the node's /health every 250 ms and notes whether the node reported it (a
// failing disk as unhealthy with reason log_write_error; a slow one as degraded): the
// checker requires a failing disk to be reported. The heal removes the file; the node
// must then catch up and converge with the others (the end-of-run checks).
type diskFault struct{}

func (diskFault) kind() string { return Disk }

func (diskFault) inject(ctx context.Context, n *Nemesis, start startFunc) func() {
	first := !n.diskFaulted
	n.diskFaulted = true
	id := n.random()
	onLeader := !first && n.rng.IntN(2) == 0
	if onLeader {
		id = n.leader(ctx)
	} else if first {
		followers := n.others(n.leader(ctx))
		id = followers[n.rng.IntN(len(followers))]
	}
	mode := diskModes[n.rng.IntN(len(diskModes))]
	if first {
		mode = diskModes[n.rng.IntN(2)] // a failing disk
	}
	note := mode
	if onLeader {
		note += " on the leader"
	}
	f := start(id, note)
	if err := n.C.SetDisk(id, mode); err != nil {
		n.Log("nemesis: disk %s: %v", id, err)
	}
	began := time.Now()
	done := make(chan struct{})
	seen := make(chan time.Duration, 1) // when /health first reported it; -1: never
	go func() {
		reported := time.Duration(-1)
		defer func() { seen <- reported }()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			h, err := n.C.Health(hctx, id)
			cancel()
			if err == nil && diskShown(mode, h.Reasons, h.Degraded) {
				reported = time.Since(began)
				return
			}
		}
	}()
	return func() {
		close(done)
		reported := <-seen
		if err := n.C.SetDisk(id, ""); err != nil {
			n.Log("nemesis: disk %s: heal: %v", id, err)
		}
		if reported >= 0 {
			n.H.AddNote(f, fmt.Sprintf("%s after %v", DiskReported, reported.Round(time.Millisecond)))
		} else {
			n.H.AddNote(f, DiskNotReported)
		}
		// hashicorp/raft panics when it cannot persist a new term or vote: the process
		// exits, as it should, and a supervisor would start it again.
		if !n.C.Node(id).Running() {
			n.H.AddNote(f, DiskExited)
			if err := n.C.Restart(id); err != nil {
				n.Log("nemesis: disk %s: restart: %v", id, err)
			}
		}
	}
}

// diskShown says whether a node's /health shows a disk fault of mode.
func diskShown(mode string, reasons, degraded []string) bool {
	if mode == "enospc" || mode == "eio" {
		return slices.Contains(reasons, healthReasonLogWrite)
	}
	return len(degraded) > 0
}
