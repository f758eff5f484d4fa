package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/membership"
)

// addClusterMembershipCmds adds members, remove and transfer-leader to `cluster`.
func (a *app) addClusterMembershipCmds(cluster *cobra.Command) {
	cluster.AddCommand(&cobra.Command{
		Use:   "members",
		Short: "List the gossip members: addresses, health, version, voter or not",
		Long: `List the members gossip knows (as the leader sees them) with their gRPC, Raft and
gossip addresses, health (alive, suspect, dead, left; unknown for a server in the Raft
configuration that gossip does not know) and whether each is a Raft voter.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.ClusterMembers(ctx)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				return printMembers(cmd.OutOrStdout(), resp)
			})
		},
	})
	cluster.AddCommand(&cobra.Command{
		Use:   "remove NODE",
		Short: "Remove a stopped node from the Raft configuration",
		Long: `Remove a node from the Raft configuration (compare-and-set on the configuration
index). Stop the node first: a node gossip reports alive would be added back by the
leader. The leader cannot be removed (run cluster transfer-leader first), nor the last
voter, nor a voter whose removal leaves the healthy voters short of a quorum.`,
		Args: exactArgs("NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.RemoveNode(ctx, client.NewRemoveNodeOption(args[0]))
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s (configuration index %d)\n", args[0], resp.GetConfigurationIndex())
				return nil
			})
		},
	})
	cluster.AddCommand(&cobra.Command{
		Use:   "transfer-leader [NODE]",
		Short: "Hand leadership to NODE, or to the most up to date follower",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("%q takes at most one node; got %q", cmd.CommandPath(), args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opt := client.NewTransferLeadershipOption()
			if len(args) == 1 {
				opt.WithTarget(args[0])
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.TransferLeadership(ctx, opt)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "leader: %s\n", resp.GetLeaderId())
				return nil
			})
		},
	})
	cluster.AddCommand(&cobra.Command{
		Use:   "lookup-requests REQUEST_ID...",
		Short: "Say what became of writes by their request ids (applied, refused, or not applied)",
		Long: `Say what became of writes by their request ids — the answer to a write that timed
out or lost its connection. The leader commits its whole log first, so a write it does
not find was not applied and never will be, as long as the deduplication window (the
last 20,000 writes) has not forgotten it: the output gives the window's seqs. At most
1,000 ids.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("%q needs at least one request id", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.LookupRequests(ctx, client.NewLookupRequestsOption(args...))
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				return printRequestOutcomes(cmd.OutOrStdout(), resp)
			})
		},
	})
}

// printRequestOutcomes writes one line per request id, then the window's seqs.
func printRequestOutcomes(w io.Writer, resp *snapkeepv1.LookupRequestsResponse) error {
	for _, o := range resp.GetOutcomes() {
		switch {
		case !o.GetFound():
			fmt.Fprintf(w, "%s\tnot found: not applied (unless the window forgot it)\n", o.GetRequestId())
		case codes.Code(o.GetCode()) == codes.OK:
			fmt.Fprintf(w, "%s\tapplied: %s (seq %d)\n", o.GetRequestId(), o.GetCommand(), o.GetSeq())
		default:
			fmt.Fprintf(w, "%s\trefused: %s (seq %d): %s: %s\n", o.GetRequestId(), o.GetCommand(), o.GetSeq(), codes.Code(o.GetCode()), o.GetMessage())
		}
	}
	_, err := fmt.Fprintf(w, "the window holds seqs %d..%d\n", resp.GetOldestSeq(), resp.GetLastSeq())
	return err
}

// printMembers writes the members' table.
func printMembers(w io.Writer, resp *snapkeepv1.ClusterMembersResponse) error {
	if !resp.GetGossipEnabled() {
		fmt.Fprintf(w, "Gossip is off on %s (no --gossip-addr): the Raft configuration only.\n\n", resp.GetNodeId())
	}
	t := newTable(w, "NODE", "STATUS", "VOTER", "LEADER", "VERSION", "GRPC ADDR", "RAFT ADDR", "GOSSIP ADDR")
	for _, m := range resp.GetMembers() {
		voter := yesNo(m.GetVoter())
		if !m.GetInRaftConfiguration() {
			voter = "not in raft"
		}
		t.row(m.GetId(), memberStatusName(m.GetStatus()), voter, yesNo(m.GetLeader()), orDash(m.GetVersion()),
			orDash(m.GetGrpcAddr()), orDash(m.GetRaftAddr()), orDash(m.GetGossipAddr()))
	}
	return t.flush()
}

func memberStatusName(s snapkeepv1.MemberStatus) string {
	if s == snapkeepv1.MemberStatus_MEMBER_STATUS_UNSPECIFIED {
		return "-"
	}
	return enumName(s)
}

// addGossipFlags adds the discovery and membership flags of `snapkeep server`.
func addGossipFlags(cmd *cobra.Command, cfg *server.Config) {
	g := &cfg.Gossip
	fl := cmd.Flags()
	fl.StringVar(&g.Addr, "gossip-addr", "", "address gossip (memberlist) listens on, TCP and UDP; empty: no gossip, --peers bootstraps")
	fl.StringVar(&g.Advertise, "gossip-advertise", "", "gossip address other nodes are told, when not --gossip-addr")
	fl.StringArrayVar(&g.Join, "join", nil, "gossip address HOST:PORT of another node to join (repeatable; retried until one answers)")
	fl.IntVar(&g.BootstrapExpect, "bootstrap-expect", 0, "bootstrap a new cluster once gossip shows this many servers, none with Raft state (same value on every node; 0: never)")
	fl.DurationVar(&g.DeadServerTimeout, "dead-server-timeout", 0, "remove a voter from Raft after it has been dead this long, if quorum allows (0: never)")
	fl.Var(&gossipKeyValue{key: &g.Key}, "gossip-key", "base64 key of 16, 24 or 32 bytes encrypting gossip (the same on every node)")
}

// gossipKeyValue parses --gossip-key.
type gossipKeyValue struct{ key *[]byte }

func (v *gossipKeyValue) String() string {
	if v.key == nil || len(*v.key) == 0 {
		return ""
	}
	return "(set)"
}

func (v *gossipKeyValue) Set(s string) error {
	if strings.TrimSpace(s) == "" { // no key: gossip in the clear
		*v.key = nil
		return nil
	}
	key, err := membership.ParseKey(s)
	if err != nil {
		return err
	}
	*v.key = key
	return nil
}

func (v *gossipKeyValue) Type() string { return "base64" }
