package server

import (
	"context"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/manifest/repository"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/api"
)

// repositoryProbeTimeout bounds each node's probe of a repository.
const repositoryProbeTimeout = 30 * time.Second

// probeRepository checks a repository from every server of the Raft configuration,
// this node included, each with its own credentials; a node that cannot be asked is
// a failed probe naming why.
func (n *Node) probeRepository(ctx context.Context, r *fsmpb.Repository) ([]*pb.RepositoryProbe, error) {
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, raftError(err)
	}
	registered := map[string]string{}
	for _, node := range n.fsm.View().Nodes() {
		registered[node.Id] = node.GrpcAddr
	}
	for _, srv := range future.Configuration().Servers {
		if string(srv.ID) != n.cfg.NodeID && registered[string(srv.ID)] == "" {
			// A node just started: it registers its address through the log shortly.
			return nil, status.Errorf(codes.Unavailable, "node %s has not registered its gRPC address yet, so it cannot probe the repository; retry shortly", srv.ID)
		}
	}
	probe := repository.NewID()
	spec := api.RepositorySpecOf(r)
	servers := future.Configuration().Servers
	out := make([]*pb.RepositoryProbe, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		id := string(srv.ID)
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, repositoryProbeTimeout)
			defer cancel()
			if id == n.cfg.NodeID {
				p := n.repos.Probe(pctx, r, probe+"-"+id)
				p.Node = id
				out[i] = p
				return
			}
			addr := registered[id]
			conn, err := n.peers.get(addr)
			var p *pb.RepositoryProbe
			if err == nil {
				p, err = internalv1.NewInternalClient(conn).ProbeRepository(pctx, &internalv1.ProbeRepositoryRequest{Spec: spec, Probe: probe + "-" + id})
			}
			if err != nil {
				out[i] = &pb.RepositoryProbe{Node: id, Error: "cannot ask the node: " + status.Convert(err).Message()}
				return
			}
			p.Node = id
			out[i] = p
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}
