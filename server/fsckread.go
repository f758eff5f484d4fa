package server

import (
	"context"
	"errors"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/rpc/internalv1"
	"github.com/snapkeep/snapkeep/server/fsck"
)

// maxFsckReadItems bounds one Internal.FsckRead batch.
const maxFsckReadItems = 4096

// FsckRead reads a batch of files back for a deep fsck another node runs.
func (s *internalService) FsckRead(ctx context.Context, req *internalv1.FsckReadRequest) (*internalv1.FsckReadResponse, error) {
	switch {
	case len(req.Items) > maxFsckReadItems:
		return nil, status.Errorf(codes.InvalidArgument, "%d files in one batch, over the limit of %d", len(req.Items), maxFsckReadItems)
	case req.BytesPerSecond < 0:
		return nil, status.Errorf(codes.InvalidArgument, "bytes_per_second %d cannot be negative", req.BytesPerSecond)
	case req.Concurrency > 256:
		return nil, status.Errorf(codes.InvalidArgument, "concurrency %d is over the limit of 256", req.Concurrency)
	}
	store, err := s.n.objectStore()
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s: %v", s.n.cfg.NodeID, err)
	}
	items := make([]fsck.ReadItem, len(req.Items))
	for i, it := range req.Items {
		items[i] = fsck.ReadItem{Key: it.Key, Size: it.Size, CRC32C: it.Crc32C}
	}
	res := fsck.ReadBack(ctx, store, items, req.BytesPerSecond, int(req.Concurrency))
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	out := &internalv1.FsckReadResponse{FilesRead: res.Files, BytesRead: res.Bytes}
	for _, p := range res.Problems {
		out.Problems = append(out.Problems, &internalv1.FsckReadProblem{Key: p.Key, Kind: p.Kind, Detail: p.Detail, Read: p.Read})
	}
	return out, nil
}

// peerReader is another node reading deep fsck batches (Internal.FsckRead).
type peerReader struct {
	n        *Node
	id, addr string
}

func (r peerReader) Name() string { return "node " + r.id }

func (r peerReader) ReadBack(ctx context.Context, items []fsck.ReadItem, bytesPerSecond int64, concurrency int) (fsck.ReadResults, error) {
	conn, err := r.n.peers.get(r.addr)
	if err != nil {
		return fsck.ReadResults{}, err
	}
	req := &internalv1.FsckReadRequest{BytesPerSecond: bytesPerSecond, Concurrency: uint32(max(0, concurrency))}
	for _, it := range items {
		req.Items = append(req.Items, &internalv1.FsckReadItem{Key: it.Key, Size: it.Size, Crc32C: it.CRC32C})
	}
	resp, err := internalv1.NewInternalClient(conn).FsckRead(ctx, req)
	if err != nil {
		return fsck.ReadResults{}, errors.New(status.Convert(err).Message())
	}
	out := fsck.ReadResults{Files: resp.FilesRead, Bytes: resp.BytesRead}
	for _, p := range resp.Problems {
		out.Problems = append(out.Problems, fsck.ReadProblem{Key: p.Key, Kind: p.Kind, Detail: p.Detail, Read: p.Read})
	}
	return out, nil
}

// fsckReaders are the other voters gossip sees alive and that registered their gRPC
// address: the nodes a deep fsck shares its reads with.
func (n *Node) fsckReaders() []fsck.Reader {
	future := n.raft.GetConfiguration()
	if future.Error() != nil {
		return nil // this node reads alone
	}
	registered := map[string]string{}
	for _, node := range n.fsm.View().Nodes() {
		registered[node.Id] = node.GrpcAddr
	}
	var out []fsck.Reader
	for _, srv := range future.Configuration().Servers {
		id := string(srv.ID)
		if id != n.cfg.NodeID && srv.Suffrage == raft.Voter && registered[id] != "" && n.members.Healthy(id) {
			out = append(out, peerReader{n: n, id: id, addr: registered[id]})
		}
	}
	return out
}
