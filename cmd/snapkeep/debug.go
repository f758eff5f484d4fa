package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/internal/raftreplay"
)

// newDebugCmd holds the offline tools that read a stopped node's data directory.
func newDebugCmd() *cobra.Command {
	cmd := groupCmd("debug", "Offline tools over a stopped node's data directory")
	cmd.AddCommand(newDebugReplayCmd(), newDebugDiffCmd())
	return cmd
}

func newDebugReplayCmd() *cobra.Command {
	var from string
	var index uint64
	var dump bool
	cmd := &cobra.Command{
		Use:   "replay DATA_DIR",
		Short: "Rebuild a node's FSM from its raft snapshot and log at an index; print its hash",
		Long: `replay rebuilds the FSM of a stopped node from DATA_DIR (its Raft log, raft/wal
or raft/raft.db, and raft/snapshots; nothing there is changed) at --index
(default: the last entry of its log), starting from --from (a snapshot ID,
"empty", or by default the newest snapshot the log continues from). It prints
the index, the state hash (the same as the node's /debug hash at that index),
and whether the derived state agrees with a rebuild from the records; --dump
prints every record.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := raftreplay.Open(args[0], args[0])
			if err != nil {
				return err
			}
			defer src.Close()
			to := index
			if to == 0 {
				to = src.Last
			}
			start, err := src.Start(from, to)
			if err != nil {
				return err
			}
			r, err := src.NewReplayer(start)
			if err != nil {
				return err
			}
			if err := r.To(to); err != nil {
				return err
			}
			v := r.FSM.View()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "log %d..%d, start %s, index %d\nhash %s\n", src.First, src.Last, startName(start), v.AppliedIndex(), v.Hash())
			if err := v.CheckDerived(); err != nil {
				fmt.Fprintf(out, "derived state differs from a rebuild:\n%v\n", err)
			} else {
				fmt.Fprintln(out, "derived state agrees with a rebuild")
			}
			if dump {
				fmt.Fprintln(out, strings.Join(raftreplay.Dump(v), "\n"))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", `start from this raft snapshot ID, or "empty" (default: the newest one the log continues from)`)
	cmd.Flags().Uint64Var(&index, "index", 0, "replay up to this log index (default: the last)")
	cmd.Flags().BoolVar(&dump, "dump", false, "print every record of the state")
	return cmd
}

func newDebugDiffCmd() *cobra.Command {
	var fromA, fromB string
	var index uint64
	var every int
	cmd := &cobra.Command{
		Use:   "diff DATA_DIR_A DATA_DIR_B",
		Short: "Find the first log index at which two nodes' FSM states part",
		Long: `diff replays two stopped nodes' data directories side by side (each from its
--from-a/--from-b start, by default the newest raft snapshot its log continues
from, brought to the later of the two starts) up to --index (default: the last
index both logs hold), and prints the first index whose state differs: the entry
applied there on each side, both hashes, whether each side's derived state
agreed with a rebuild just before, and the records that differ. Two replays of
the same log from different starts (--from-a empty vs a snapshot, on the same
directory) find state a raft snapshot restores differently.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := raftreplay.Open("A", args[0])
			if err != nil {
				return err
			}
			defer a.Close()
			b, err := raftreplay.Open("B", args[1])
			if err != nil {
				return err
			}
			defer b.Close()
			to := index
			if to == 0 {
				to = min(a.Last, b.Last)
			}
			sa, err := a.Start(fromA, to)
			if err != nil {
				return err
			}
			sb, err := b.Start(fromB, to)
			if err != nil {
				return err
			}
			ra, err := a.NewReplayer(sa)
			if err != nil {
				return err
			}
			rb, err := b.NewReplayer(sb)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "A: log %d..%d, start %s\nB: log %d..%d, start %s\n", a.First, a.Last, startName(sa), b.First, b.Last, startName(sb))
			d, err := raftreplay.FirstDivergence(ra, rb, to, every)
			if err != nil {
				return err
			}
			if d == nil {
				fmt.Fprintf(out, "the states agree up to index %d (hash %s)\n", to, ra.FSM.View().Hash())
				return nil
			}
			fmt.Fprint(out, d.String())
			return fmt.Errorf("the states differ from index %d", d.Index)
		},
	}
	cmd.Flags().StringVar(&fromA, "from-a", "", `A's start: a raft snapshot ID or "empty" (default: the newest one A's log continues from)`)
	cmd.Flags().StringVar(&fromB, "from-b", "", `B's start, likewise`)
	cmd.Flags().Uint64Var(&index, "index", 0, "compare up to this log index (default: the last both logs hold)")
	cmd.Flags().IntVar(&every, "every", 256, "compare hashes every this many entries (then bisect)")
	return cmd
}

func startName(m *raftreplay.SnapshotMeta) string {
	if m == nil {
		return "empty state"
	}
	return fmt.Sprintf("raft snapshot %s (index %d)", m.ID, m.Index)
}
