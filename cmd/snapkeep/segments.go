package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// segmentStates maps the --state values to states.
var segmentStates = map[string]snapkeepv1.SegmentState{
	"allocated": snapkeepv1.SegmentState_SEGMENT_STATE_ALLOCATED,
	"flushed":   snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED,
	"dropped":   snapkeepv1.SegmentState_SEGMENT_STATE_DROPPED,
}

func parseSegmentStates(values []string) ([]snapkeepv1.SegmentState, error) {
	var states []snapkeepv1.SegmentState
	for _, v := range values {
		st, ok := segmentStates[strings.ToLower(strings.TrimSpace(v))]
		if !ok {
			return nil, usageErrorf("--state %q: want allocated, flushed or dropped", v)
		}
		states = append(states, st)
	}
	return states, nil
}

func (a *app) segmentCmd() *cobra.Command {
	cmd := groupCmd("segment", "List, describe and drop segments")

	var database, partition string
	var states []string
	var withFiles bool
	list := &cobra.Command{
		Use:   "list COLLECTION",
		Short: "List a collection's segments (every page), ordered by id",
		Args:  exactArgs("COLLECTION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			wantStates, err := parseSegmentStates(states)
			if err != nil {
				return err
			}
			opt := client.NewListSegmentsOption(args[0]).WithDatabase(database).WithPartition(partition).WithStates(wantStates...)
			if !withFiles {
				opt.WithoutFiles()
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				segs, err := listAllSegments(ctx, cl, opt)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.ListSegmentsResponse{Segments: segs})
				}
				partitions, err := partitionNames(ctx, cl, database, args[0])
				if err != nil {
					return err
				}
				if err := printSegments(cmd.OutOrStdout(), segs, partitions, withFiles); err != nil {
					return err
				}
				if withFiles {
					for _, s := range segs {
						fmt.Fprintf(cmd.OutOrStdout(), "\nSegment %d:\n", s.GetId())
						if err := printFiles(cmd.OutOrStdout(), s.GetFiles()); err != nil {
							return err
						}
					}
				}
				return nil
			})
		},
	}
	list.Flags().StringVar(&database, "database", "", "the collection's database (default \"default\")")
	list.Flags().StringVar(&partition, "partition", "", "only segments of this partition")
	list.Flags().StringSliceVar(&states, "state", nil, "only segments in this `state`: allocated, flushed or dropped (repeatable)")
	list.Flags().BoolVar(&withFiles, "files", false, "fetch and show every segment's files")

	describe := &cobra.Command{
		Use:   "describe ID",
		Short: "Show one segment with its files, index builds and lineage",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return usageErrorf("segment id %q: want a positive integer", args[0])
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				seg, err := cl.GetSegment(ctx, client.NewGetSegmentOption(id))
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.GetSegmentResponse{Segment: seg})
				}
				return printSegment(cmd.OutOrStdout(), seg)
			})
		},
	}
	drop := &cobra.Command{
		Use:   "drop ID...",
		Short: "Drop segments (their files are reclaimed by GC unless a snapshot needs them)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("%q takes one or more segment ids", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ids := make([]uint64, len(args))
			for i, arg := range args {
				id, err := strconv.ParseUint(arg, 10, 64)
				if err != nil || id == 0 {
					return usageErrorf("segment id %q: want a positive integer", arg)
				}
				ids[i] = id
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				segs, err := cl.DropSegments(ctx, client.NewDropSegmentsOption(ids...))
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.DropSegmentsResponse{Segments: segs})
				}
				for _, s := range segs {
					fmt.Fprintf(cmd.OutOrStdout(), "Segment %d is %s.\n", s.GetId(), segmentState(s))
				}
				return nil
			})
		},
	}
	cmd.AddCommand(list, describe, drop)
	return cmd
}

// listAllSegments collects every segment the listing selects.
func listAllSegments(ctx context.Context, cl *client.Client, opt *client.ListSegmentsOption) ([]*snapkeepv1.Segment, error) {
	var segs []*snapkeepv1.Segment
	for seg, err := range cl.ListAllSegments(ctx, opt) {
		if err != nil {
			return nil, err
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

// partitionNames maps a collection's partition ids to their names, for tables.
func partitionNames(ctx context.Context, cl *client.Client, database, collection string) (map[uint64]string, error) {
	resp, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(collection).WithDatabase(database))
	if err != nil {
		return nil, err
	}
	names := make(map[uint64]string)
	for _, p := range resp.GetCollection().GetPartitions() {
		names[p.GetId()] = p.GetName()
	}
	return names, nil
}
