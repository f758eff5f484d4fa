package client

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// LeaderMetadataKey is the gRPC header (or trailer) key in which every node names the
// current leader's gRPC address ("host:port") when it knows it.
const LeaderMetadataKey = "snapkeep-leader"

// Retry defaults; see Config.
const (
	DefaultMaxRetries      = 20
	DefaultRetryBackoff    = 50 * time.Millisecond
	DefaultMaxRetryBackoff = 2 * time.Second
)

// leaderCooldown is how long after a retriable failure an endpoint is not followed
// as the leader. Any node accepts any call, so following the leader only saves a
// hop; not chasing an address that just failed (say, one this client cannot reach)
// matters more.
const leaderCooldown = 2 * time.Second

// maxLearnedEndpoints bounds how many leader addresses the client dials beyond the
// configured endpoints, so a confused or hostile node cannot make it dial without end.
const maxLearnedEndpoints = 8

// Config configures a Client. Only Endpoints is required.
type Config struct {
	// Endpoints are the gRPC addresses ("host:port") of some or all nodes.
	Endpoints []string
	// DialOptions are appended after the client's defaults (insecure transport
	// credentials, a short reconnect backoff), so they override them: pass
	// grpc.WithTransportCredentials(...) for TLS.
	DialOptions []grpc.DialOption
	// MaxRetries is how many times a call is retried after a retriable error
	// (Unavailable, Aborted). 0 means DefaultMaxRetries; a negative value disables
	// retries. Retries stop earlier when the call's context is done.
	MaxRetries int
	// RetryBackoff is the delay before the first retry (0: DefaultRetryBackoff); it
	// doubles with each retry up to MaxRetryBackoff (0: DefaultMaxRetryBackoff).
	RetryBackoff, MaxRetryBackoff time.Duration
	// NoLeaderFollowing keeps every call on the configured endpoints: the leader a
	// node names is not dialled or preferred (a node forwards what it cannot serve). The
	// fault-injection harness uses it with one endpoint and MaxRetries < 0 so that it
	// knows which node served each call.
	NoLeaderFollowing bool
	// Logger receives debug logs of retries and leader changes (nil: discard).
	Logger *slog.Logger
}

// Client is a connection to a snapkeep cluster. It is safe for concurrent use.
//
// # Routing
//
// Writes and linearizable reads go to the preferred endpoint, initially the first one.
// Every node names the leader in the snapkeep-leader response metadata; the client
// then prefers the leader (dialling its address if it is not among the endpoints), so
// calls do not pay for the server-side forwarding hop (an address that failed in the
// last two seconds is not followed). Stale reads (WithStale) are spread round-robin
// over all endpoints.
//
// # Retries
//
// A call that fails with Unavailable or Aborted is retried, up to Config.MaxRetries
// times (default 20) and never past the call's context deadline or cancellation.
// Retries go to the next endpoint or, once per call without waiting, to the leader a
// failed response named; otherwise the client waits an exponential backoff with jitter
// (RetryBackoff doubling up to MaxRetryBackoff, each delay drawn from [d/2, d)).
// A write keeps the same request_id across all its retries, and the cluster
// deduplicates by it, so a write whose response was lost is applied at most once.
// Every other error is returned at once, as an *Error carrying the server's code and
// message. When the context ends first, the error matches both ErrDeadlineExceeded
// (or ErrCanceled) and context.DeadlineExceeded (or context.Canceled).
type Client struct {
	cfg         Config
	log         *slog.Logger
	dialOptions []grpc.DialOption

	mu        sync.Mutex
	closed    bool
	endpoints []*endpoint // configured endpoints first, then learned leaders
	learned   int         // endpoints added from leader metadata
	preferred int         // index into endpoints for writes and linearizable reads
	nextRead  int         // round-robin counter for stale reads
}

// endpoint is one dialled node.
type endpoint struct {
	addr         string
	conn         *grpc.ClientConn
	catalog      snapkeepv1.CatalogClient
	cluster      snapkeepv1.ClusterClient
	snapshots    snapkeepv1.SnapshotsClient
	restores     snapkeepv1.RestoresClient
	gc           snapkeepv1.GCClient
	repositories snapkeepv1.RepositoriesClient
	policies     snapkeepv1.PoliciesClient
	integrity    snapkeepv1.IntegrityClient

	failedAt time.Time // last retriable failure; guarded by Client.mu
}

// New connects to a cluster through the given endpoints with the default Config.
func New(ctx context.Context, endpoints ...string) (*Client, error) {
	return NewWithConfig(ctx, Config{Endpoints: endpoints})
}

// NewWithConfig connects to a cluster. Connections are made lazily, on the first call
// that needs them, so NewWithConfig does not fail when nodes are down; ctx is only
// checked, not kept.
func NewWithConfig(ctx context.Context, cfg Config) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	addrs, err := normalizeEndpoints(cfg.Endpoints)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.MaxRetryBackoff <= 0 {
		cfg.MaxRetryBackoff = DefaultMaxRetryBackoff
	}
	cfg.MaxRetryBackoff = max(cfg.MaxRetryBackoff, cfg.RetryBackoff)
	c := &Client{cfg: cfg, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.dialOptions = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// gRPC's default reconnect backoff grows to two minutes; a restarted node
		// should be usable again within seconds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithUserAgent("snapkeep-go-client"),
		// The server sends up to 16 MiB (one segment with 10,000 long keys can be
		// larger than gRPC's default 4 MiB receive limit); listings page well below.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
	}, cfg.DialOptions...)
	for _, addr := range addrs {
		ep, err := c.dial(addr)
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		c.endpoints = append(c.endpoints, ep)
	}
	return c, nil
}

func normalizeEndpoints(in []string) ([]string, error) {
	var out []string
	seen := make(map[string]bool)
	for _, e := range in {
		e = strings.TrimSpace(e)
		if e == "" {
			return nil, fmt.Errorf("snapkeep client: empty endpoint in %q: %w", in, ErrInvalidArgument)
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("snapkeep client: no endpoints given: %w", ErrInvalidArgument)
	}
	return out, nil
}

func (c *Client) dial(addr string) (*endpoint, error) {
	conn, err := grpc.NewClient(addr, c.dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("snapkeep client: endpoint %q: %w", addr, err)
	}
	return &endpoint{
		addr:         addr,
		conn:         conn,
		catalog:      snapkeepv1.NewCatalogClient(conn),
		cluster:      snapkeepv1.NewClusterClient(conn),
		snapshots:    snapkeepv1.NewSnapshotsClient(conn),
		restores:     snapkeepv1.NewRestoresClient(conn),
		gc:           snapkeepv1.NewGCClient(conn),
		repositories: snapkeepv1.NewRepositoriesClient(conn),
		policies:     snapkeepv1.NewPoliciesClient(conn),
		integrity:    snapkeepv1.NewIntegrityClient(conn),
	}, nil
}

// Close closes every connection. Calls in flight fail; later calls return ErrClosed.
// Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	eps := c.endpoints
	c.mu.Unlock()
	var errs []error
	for _, ep := range eps {
		if err := ep.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", ep.addr, err))
		}
	}
	return errors.Join(errs...)
}

// Endpoints returns the addresses the client knows: the configured ones, then any
// leader addresses learned from responses.
func (c *Client) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.endpoints))
	for i, ep := range c.endpoints {
		out[i] = ep.addr
	}
	return out
}

// PreferredEndpoint returns the address writes currently go to: the last known
// leader, or the configured endpoint the client is trying.
func (c *Client) PreferredEndpoint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoints[c.preferred].addr
}

// route says where a call may go.
type route int

const (
	// routeLeader: writes and linearizable reads, sent to the preferred endpoint.
	routeLeader route = iota
	// routeAny: stale reads, spread round-robin over every endpoint.
	routeAny
)

func (c *Client) pick(r route) (*endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if r == routeAny {
		ep := c.endpoints[c.nextRead%len(c.endpoints)]
		c.nextRead++
		return ep, nil
	}
	return c.endpoints[c.preferred], nil
}

// followLeader makes addr the preferred endpoint, dialling it if it is new, and
// reports whether the preference changed.
func (c *Client) followLeader(addr string) bool {
	if addr == "" || c.cfg.NoLeaderFollowing {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	idx := -1
	for i, ep := range c.endpoints {
		if ep.addr == addr {
			idx = i
			break
		}
	}
	if idx < 0 {
		if c.learned >= maxLearnedEndpoints {
			return false
		}
		ep, err := c.dial(addr)
		if err != nil {
			c.log.Debug("snapkeep client: cannot dial the leader a node named", "leader", addr, "err", err)
			return false
		}
		c.endpoints = append(c.endpoints, ep)
		c.learned++
		idx = len(c.endpoints) - 1
	}
	if idx == c.preferred || time.Since(c.endpoints[idx].failedAt) < leaderCooldown {
		return false
	}
	c.log.Debug("snapkeep client: following leader", "from", c.endpoints[c.preferred].addr, "to", addr)
	c.preferred = idx
	return true
}

// skip moves the preference off ep after it failed, unless another call already did.
func (c *Client) skip(ep *endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ep.failedAt = time.Now()
	if c.endpoints[c.preferred] == ep {
		c.preferred = (c.preferred + 1) % len(c.endpoints)
	}
}

// backoff is the delay before retry n (1-based): RetryBackoff·2^(n-1), capped at
// MaxRetryBackoff, drawn uniformly from [d/2, d) so that clients do not retry in step.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.MaxRetryBackoff
	if n-1 < 32 {
		d = min(c.cfg.RetryBackoff<<(n-1), c.cfg.MaxRetryBackoff)
	}
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// attemptFunc performs one attempt of an RPC on ep.
type attemptFunc[Resp any] func(ctx context.Context, ep *endpoint, opts ...grpc.CallOption) (Resp, error)

// invoke runs an RPC with the client's routing and retry policy (see Client).
func invoke[Resp any](ctx context.Context, c *Client, method string, r route, call attemptFunc[Resp]) (Resp, error) {
	var zero Resp
	if ctx.Err() != nil {
		return zero, contextError(ctx, 0, nil)
	}
	var lastErr *Error
	redirected := false
	for attempt := 1; ; attempt++ {
		ep, err := c.pick(r)
		if err != nil {
			return zero, err
		}
		var header, trailer metadata.MD
		resp, err := call(ctx, ep, grpc.Header(&header), grpc.Trailer(&trailer))
		moved := c.followLeader(leaderFrom(header, trailer))
		if err == nil {
			return resp, nil
		}
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			// gRPC fails a call as soon as its deadline passes, a moment before the
			// context's own timer fires: wait for it, so the error is the context's.
			<-ctx.Done()
		}
		if ctx.Err() != nil {
			// The caller's deadline or cancellation ended the call, whatever status
			// gRPC made of it.
			return zero, contextError(ctx, attempt, errOrNil(lastErr))
		}
		lastErr = fromStatusError(err)
		if !retriable(lastErr.Code) {
			return zero, lastErr
		}
		if attempt > c.cfg.MaxRetries {
			c.log.Debug("snapkeep client: giving up", "method", method, "attempts", attempt, "err", lastErr)
			return zero, lastErr
		}
		if !moved {
			c.skip(ep)
		}
		delay := c.backoff(attempt)
		if moved && !redirected {
			// The node told us who leads: go there at once, but only once per call
			// so two nodes that disagree cannot make us spin.
			redirected = true
			delay = 0
		}
		c.log.Debug("snapkeep client: retrying", "method", method, "endpoint", ep.addr, "attempt", attempt, "delay", delay, "err", lastErr)
		if !sleep(ctx, delay) {
			return zero, contextError(ctx, attempt, errOrNil(lastErr))
		}
	}
}

// errOrNil turns a nil *Error into a nil error (not a non-nil interface holding nil).
func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

func leaderFrom(mds ...metadata.MD) string {
	for _, md := range mds {
		if v := md.Get(LeaderMetadataKey); len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	return ""
}

// sleep waits d or until ctx is done; it reports whether the full delay passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newRequestID returns a fresh deduplication id: 16 random bytes in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = cryptorand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// maxMessageBytes is the server's gRPC message limit.
const maxMessageBytes = 16 << 20
