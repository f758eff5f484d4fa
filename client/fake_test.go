package client

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// fakeNode is a scripted stand-in for one snapkeep node, for the client's own tests of
// routing and retries. It records every call and answers it with what the test's
// script returns, by default an empty response of the method's type. It keeps no
// catalog: tests of what the server does run against server/servertest.
type fakeNode struct {
	addr string
	srv  *grpc.Server

	mu     sync.Mutex
	leader string // named in the snapkeep-leader header of every response, and the trailer of every error
	script script
	calls  []fakeCall
}

// script answers a call instead of the default empty response. It may set headers and
// trailers on ctx with grpc.SetHeader and grpc.SetTrailer (a snapkeep-leader trailer it
// sets comes before the node's own, and wins). A nil response with a nil error means
// the default answer.
type script func(ctx context.Context, method string, req proto.Message) (proto.Message, error)

// fakeCall is one call a fakeNode received.
type fakeCall struct {
	Method    string // e.g. "CreateCollection"
	RequestID string // "" for reads
	Request   proto.Message
}

// startFake starts a fake node on a free loopback port; it stops when the test ends.
// It names itself as the leader until told otherwise.
func startFake(t *testing.T) *fakeNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake node: listen: %v", err)
	}
	f := &fakeNode{addr: lis.Addr().String()}
	f.leader = f.addr
	f.srv = grpc.NewServer(grpc.UnaryInterceptor(f.answer))
	// The handlers are never reached: answer replies to every call itself.
	snapkeepv1.RegisterCatalogServer(f.srv, snapkeepv1.UnimplementedCatalogServer{})
	snapkeepv1.RegisterClusterServer(f.srv, snapkeepv1.UnimplementedClusterServer{})
	snapkeepv1.RegisterSnapshotsServer(f.srv, snapkeepv1.UnimplementedSnapshotsServer{})
	snapkeepv1.RegisterRestoresServer(f.srv, snapkeepv1.UnimplementedRestoresServer{})
	snapkeepv1.RegisterGCServer(f.srv, snapkeepv1.UnimplementedGCServer{})
	snapkeepv1.RegisterRepositoriesServer(f.srv, snapkeepv1.UnimplementedRepositoriesServer{})
	go func() { _ = f.srv.Serve(lis) }()
	t.Cleanup(f.stop)
	return f
}

// stop stops the node at once, failing calls in flight.
func (f *fakeNode) stop() { f.srv.Stop() }

// setLeader changes the address named in the snapkeep-leader metadata ("" names none).
func (f *fakeNode) setLeader(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leader = addr
}

// setScript installs s to answer every later call.
func (f *fakeNode) setScript(s script) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = s
}

// received returns the calls received so far, all of them or those of one method.
func (f *fakeNode) received(method ...string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(f.calls), func(c fakeCall) bool {
		return len(method) > 0 && !slices.Contains(method, c.Method)
	})
}

func (f *fakeNode) answer(ctx context.Context, req any, info *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
	msg := req.(proto.Message)
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	var requestID string
	if r, ok := req.(interface{ GetRequestId() string }); ok {
		requestID = r.GetRequestId()
	}
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{Method: method, RequestID: requestID, Request: proto.Clone(msg)})
	leader, s := f.leader, f.script
	f.mu.Unlock()

	if leader != "" {
		_ = grpc.SetHeader(ctx, metadata.Pairs(LeaderMetadataKey, leader))
	}
	if s != nil {
		resp, err := s(ctx, method, msg)
		if err != nil {
			// As a node does: an error's trailer names the leader the node knows now,
			// empty while it knows none.
			f.mu.Lock()
			leader = f.leader
			f.mu.Unlock()
			_ = grpc.SetTrailer(ctx, metadata.Pairs(LeaderMetadataKey, leader))
		}
		if err != nil || resp != nil {
			return resp, err
		}
	}
	return emptyResponse(info.FullMethod)
}

// emptyResponse is a zero response of the type fullMethod ("/pkg.Service/Method")
// returns.
func emptyResponse(fullMethod string) (proto.Message, error) {
	service, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil, err
	}
	out := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method)).Output()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(out.FullName())
	if err != nil {
		return nil, err
	}
	return mt.New().Interface(), nil
}
