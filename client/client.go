package client

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
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

// Retry defaults; see Config and Client (Retries). With them a call that finds no
// leader polls every 12.5–25 ms for about 1.5 s (an election with the servers' LAN
// timeouts takes about half a second), then waits twice as long each time up to 2 s,
// and gives up after about 25 s in all if its context has no deadline before that.
const (
	DefaultMaxRetries      = 100
	DefaultRetryBackoff    = 25 * time.Millisecond
	DefaultMaxRetryBackoff = 2 * time.Second
)

// pollWaits is how many of a call's waits last RetryBackoff before the delay starts
// doubling: the client polls through an election, and backs off from a cluster that
// stays without a leader.
const pollWaits = 80

// leaderCooldown is how long after an endpoint could not be reached (a connection
// failure: no answer from the node) it is not followed as the leader nor tried at once
// by a retry. Any node accepts any call, so following the leader only saves a hop; not
// chasing an address that just failed (say, one this client cannot reach) matters
// more. A node that answered, even with an error, is never cooling down.
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
	// MaxRetries is how many times a call may wait and retry after a retriable error
	// (Unavailable, Aborted) when no node names a leader to go to; going at once to a
	// named leader or to another endpoint is not counted (see Client, Retries). 0
	// means DefaultMaxRetries; a negative value disables retries altogether (the first
	// error is returned). Retries stop earlier when the call's context is done.
	MaxRetries int
	// RetryBackoff is the delay of a call's first 80 waits (0: DefaultRetryBackoff):
	// polling while the cluster elects a leader. Later waits double it each time up to
	// MaxRetryBackoff (0: DefaultMaxRetryBackoff). Each delay d is drawn from
	// [d/2, d).
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
// calls do not pay for the server-side forwarding hop (an address that could not be
// reached in the last two seconds is not followed). Stale reads (WithStale) are spread round-robin
// over all endpoints.
//
// # Retries
//
// A call that fails with Unavailable or Aborted, or cannot reach its node, is retried
// until it succeeds, fails otherwise, its context ends, or it has waited
// Config.MaxRetries times (default 100). Where the retry goes:
//
//   - at once to the leader the failed answer names: a node names the leader it knows
//     in the snapkeep-leader metadata of every answer, errors included (the trailer
//     of a failed call names it as of the answer, and is empty while the node knows no
//     leader);
//   - else at once to the next endpoint, so a dead node costs one connection attempt;
//   - but never at once to an endpoint already tried since the call last waited, nor
//     to one that could not be reached in the last two seconds. When nothing is left
//     to try — no node names a leader the call has not just tried: an election is in
//     progress, or the cluster has no quorum — the call waits, then starts over from
//     the preferred endpoint.
//
// So a failover costs no fixed backoff: while the followers still name the dead
// leader, or name none during the election, the call polls every RetryBackoff (25 ms,
// jittered), and it reaches the new leader as soon as any node names it. After 80
// waits (about 1.5 s) the delay doubles with each wait up to MaxRetryBackoff (2 s), so
// a cluster that stays without a leader is not flooded. Every delay d is drawn from
// [d/2, d), so that clients do not retry in step.
//
// A write keeps the same request_id across all its retries, and the cluster
// deduplicates by it, so a write whose response was lost (or that the old leader
// committed just before it died) is applied at most once.
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

// followLeader makes addr, the leader a successful answer named, the preferred
// endpoint, dialling it if it is new, unless it could not be reached lately.
func (c *Client) followLeader(addr string) {
	if addr == "" || c.cfg.NoLeaderFollowing {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	idx := c.endpointLocked(addr)
	if idx < 0 || idx == c.preferred || time.Since(c.endpoints[idx].failedAt) < leaderCooldown {
		return
	}
	c.log.Debug("snapkeep client: following leader", "from", c.endpoints[c.preferred].addr, "to", addr)
	c.preferred = idx
}

// endpointLocked returns the index of the endpoint at addr, dialling it if it is new
// and the client may learn one more; -1 if it cannot be used. c.mu must be held.
func (c *Client) endpointLocked(addr string) int {
	if c.closed {
		return -1
	}
	for i, ep := range c.endpoints {
		if ep.addr == addr {
			return i
		}
	}
	if c.learned >= maxLearnedEndpoints {
		return -1
	}
	ep, err := c.dial(addr)
	if err != nil {
		c.log.Debug("snapkeep client: cannot dial the leader a node named", "leader", addr, "err", err)
		return -1
	}
	c.endpoints = append(c.endpoints, ep)
	c.learned++
	return len(c.endpoints) - 1
}

// retryAt picks where a call that failed on ep goes next without waiting (see Client,
// Retries): the leader the answer named, else the endpoint after ep — either only if
// not in tried (the endpoints tried since the call last waited) and not cooling down
// after a connection failure. nil means wait. answered says whether the node answered
// (it sent leader metadata); if it did not, ep cools down. Calls to the leader move
// the client's preference along with them.
func (c *Client) retryAt(ep *endpoint, r route, leader string, answered bool, tried []*endpoint) *endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if !answered {
		ep.failedAt = now
	}
	if c.closed {
		return nil
	}
	usable := func(i int) bool {
		return !slices.Contains(tried, c.endpoints[i]) && now.Sub(c.endpoints[i].failedAt) >= leaderCooldown
	}
	choose := func(i int) *endpoint {
		if r == routeLeader {
			c.preferred = i
		}
		return c.endpoints[i]
	}
	if leader != "" && r == routeLeader && !c.cfg.NoLeaderFollowing {
		if i := c.endpointLocked(leader); i >= 0 && usable(i) {
			return choose(i)
		}
	}
	from := slices.Index(c.endpoints, ep)
	for k := 1; k < len(c.endpoints); k++ {
		if i := (from + k) % len(c.endpoints); usable(i) {
			return choose(i)
		}
	}
	if r == routeLeader && !answered && c.endpoints[c.preferred] == ep {
		// After the wait, start from another endpoint than the unreachable one.
		c.preferred = (from + 1) % len(c.endpoints)
	}
	return nil
}

// backoff is the delay before a call's wait n (1-based): RetryBackoff for the first
// pollWaits waits, then doubling with each wait up to MaxRetryBackoff, drawn uniformly
// from [d/2, d) so that clients do not retry in step.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.RetryBackoff
	for k := pollWaits; k < n && d < c.cfg.MaxRetryBackoff; k++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxRetryBackoff)
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
	ep, err := c.pick(r)
	if err != nil {
		return zero, err
	}
	var lastErr *Error
	var tried []*endpoint // since the last wait
	waits := 0
	for attempt := 1; ; attempt++ {
		var header, trailer metadata.MD
		resp, err := call(ctx, ep, grpc.Header(&header), grpc.Trailer(&trailer))
		leader, answered := leaderFrom(header, trailer)
		if err == nil {
			c.followLeader(leader)
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
			c.followLeader(leader)
			return zero, lastErr
		}
		if c.cfg.MaxRetries == 0 {
			return zero, lastErr
		}
		tried = append(tried, ep)
		if next := c.retryAt(ep, r, leader, answered, tried); next != nil {
			c.log.Debug("snapkeep client: retrying at once", "method", method, "endpoint", ep.addr, "next", next.addr,
				"leader", leader, "attempt", attempt, "err", lastErr)
			ep = next
			continue
		}
		if waits >= c.cfg.MaxRetries {
			c.log.Debug("snapkeep client: giving up", "method", method, "attempts", attempt, "waits", waits, "err", lastErr)
			return zero, lastErr
		}
		waits++
		delay := c.backoff(waits)
		c.log.Debug("snapkeep client: no leader to try, waiting", "method", method, "endpoint", ep.addr,
			"attempt", attempt, "delay", delay, "err", lastErr)
		if !sleep(ctx, delay) {
			return zero, contextError(ctx, attempt, errOrNil(lastErr))
		}
		tried = tried[:0]
		if ep, err = c.pick(r); err != nil {
			return zero, err
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

// leaderFrom reads an answer's snapkeep-leader metadata: the leader it names ("" for
// none) and whether the node answered at all (it sent the key, even empty: a call
// that could not reach its node has no metadata). The trailer, written when the node
// answered, is fresher than the header, written when the call came in.
func leaderFrom(header, trailer metadata.MD) (leader string, answered bool) {
	for _, md := range []metadata.MD{trailer, header} {
		if v := md.Get(LeaderMetadataKey); len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
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
type requestIDKey struct{}

// WithRequestID returns a context whose writes carry id as their request id instead of
// a random one each: a caller that records the ids of its writes can ask LookupRequests
// what became of one that timed out. Use it for one write: the cluster answers a second
// write with the same id and the same body with the first one's result, and refuses one
// with another body.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// requestID is the id ctx carries (WithRequestID), else a new random one.
func requestID(ctx context.Context) string {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok && id != "" {
		return id
	}
	return newRequestID()
}

func newRequestID() string {
	var b [16]byte
	_, _ = cryptorand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// maxMessageBytes is the server's gRPC message limit.
const maxMessageBytes = 16 << 20
