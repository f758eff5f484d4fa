package restore

import (
	"context"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/snapkeep/snapkeep/objstore"
)

// DefaultMaxReported is how many missing and wrong-size keys a PrecheckReport
// names (it counts them all).
const DefaultMaxReported = 100

// Expected describes the objects a precheck wants to find under a prefix.
type Expected interface {
	// Len is the number of expected objects, indexed 0..Len()-1.
	Len() int
	// Lookup finds a listed key among the expected ones.
	Lookup(key string) (index int, size uint64, ok bool)
	// Key is the expected object's full key.
	Key(index int) string
}

// PrecheckReport is what a precheck found.
type PrecheckReport struct {
	// Expected is want.Len(); Found is how many of them were listed (those of
	// the wrong size included), so Found + MissingCount == Expected.
	Expected, Found int
	// Missing names the first (in key order) MaxReported missing keys, sorted;
	// MissingCount counts them all.
	Missing      []string
	MissingCount int
	// WrongSize describes the first (in key order) MaxReported objects whose
	// listed size is not the expected one, as "key: want N, got M", sorted;
	// WrongSizeCount counts them all.
	WrongSize      []string
	WrongSizeCount int
	// Listed is the number of objects listed under the prefix, expected or not.
	Listed int
	// Pages is the number of list requests that succeeded.
	Pages int
}

// OK reports whether every expected object is there with its size.
func (r PrecheckReport) OK() bool { return r.MissingCount == 0 && r.WrongSizeCount == 0 }

// PrecheckOptions tune PrecheckWithOptions; zero values take the defaults.
type PrecheckOptions struct {
	// PageSize is the number of keys asked for per list request (default and
	// maximum: the server's, 1000 on S3).
	PageSize int
	// MaxReported bounds the keys named in Missing and WrongSize (default 100).
	MaxReported int
	// MaxAttempts is how many times one list request is tried when it fails
	// transiently (default 5); BackoffBase and BackoffMax shape the waits
	// between (defaults 100 ms and 5 s).
	MaxAttempts int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Logger receives retries (debug); nil discards.
	Logger *slog.Logger
	// Shards, when set, splits the listing: prefix+shard is listed for every shard,
	// up to Parallelism (default 8) at a time, feeding one report. The shards must
	// cover every expected key (for decimal segment ids under ".../segments/": "1"
	// to "9"). Listings are sequential by nature; shards make a large one parallel.
	Shards      []string
	Parallelism int
	// Present, when set, is called once for every expected object listed with its
	// expected size (serially).
	Present func(index int, size uint64)
}

// Precheck checks that every object want expects exists under prefix with its
// expected size, by listing the prefix (ListObjectsV2, paginated) rather than
// with one HEAD per object. See PrecheckWithOptions.
func Precheck(ctx context.Context, store objstore.Store, prefix string, want Expected) (PrecheckReport, error) {
	return PrecheckWithOptions(ctx, store, prefix, want, PrecheckOptions{})
}

// PrecheckWithOptions is Precheck with options. The listing is streamed: it
// holds one page and a bitmap of the expected objects seen, never the whole
// listing. Transient list errors are retried with backoff; the error returned
// means the check could not be made (listing failed, ctx ended), not that
// objects are missing: that is in the report.
func PrecheckWithOptions(ctx context.Context, store objstore.Store, prefix string, want Expected, opts PrecheckOptions) (PrecheckReport, error) {
	if opts.MaxReported <= 0 {
		opts.MaxReported = DefaultMaxReported
	}
	policy := retryPolicy{opts.MaxAttempts, opts.BackoffBase, opts.BackoffMax, opts.Logger}
	if policy.maxAttempts <= 0 {
		policy.maxAttempts = DefaultMaxAttempts
	}
	if policy.base <= 0 {
		policy.base = DefaultBackoffBase
	}
	if policy.max <= 0 {
		policy.max = DefaultBackoffMax
	}
	if policy.logger == nil {
		policy.logger = slog.New(slog.DiscardHandler)
	}

	total := want.Len()
	report := PrecheckReport{Expected: total}
	seen := make([]uint64, (total+63)/64)
	wrong := newSmallest(opts.MaxReported)

	var mu sync.Mutex // guards report, seen and wrong; Lookup runs under it too
	// record takes one listed page into the report.
	record := func(page objstore.ListPage) error {
		mu.Lock()
		defer mu.Unlock()
		report.Pages++
		report.Listed += len(page.Objects)
		for _, obj := range page.Objects {
			i, size, ok := want.Lookup(obj.Key)
			if !ok {
				continue
			}
			if i < 0 || i >= total {
				return fmt.Errorf("precheck %q: Lookup(%q) returned index %d, outside 0..%d", prefix, obj.Key, i, total-1)
			}
			word, bit := i/64, uint64(1)<<(i%64)
			if seen[word]&bit != 0 {
				continue // listed twice: count it once
			}
			seen[word] |= bit
			report.Found++
			if obj.Size < 0 || uint64(obj.Size) != size {
				report.WrongSizeCount++
				wrong.add(obj.Key, fmt.Sprintf("%s: want %d, got %d", obj.Key, size, obj.Size))
			} else if opts.Present != nil {
				opts.Present(i, size)
			}
		}
		return nil
	}
	// list walks one prefix page by page.
	list := func(ctx context.Context, prefix string) error {
		token := ""
		for {
			var page objstore.ListPage
			err := retryLoop(ctx, policy, func() error {
				var err error
				page, err = store.List(ctx, prefix, token, opts.PageSize)
				return err
			}, func() []any { return []any{"step", "precheck list", "prefix", prefix} })
			if err != nil {
				return fmt.Errorf("precheck %q: %w", prefix, err)
			}
			if err := record(page); err != nil {
				return err
			}
			if page.NextToken == "" {
				return nil
			}
			if page.NextToken == token {
				return fmt.Errorf("precheck %q: the listing repeats continuation token %q", prefix, token)
			}
			token = page.NextToken
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("precheck %q: %w", prefix, err)
			}
		}
	}
	if len(opts.Shards) == 0 {
		if err := list(ctx, prefix); err != nil {
			return PrecheckReport{}, fmt.Errorf("%w (after %d objects listed)", err, report.Listed)
		}
	} else {
		par := opts.Parallelism
		if par <= 0 {
			par = 8
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(par)
		for _, shard := range opts.Shards {
			g.Go(func() error { return list(gctx, prefix+shard) })
		}
		if err := g.Wait(); err != nil {
			return PrecheckReport{}, fmt.Errorf("%w (after %d objects listed)", err, report.Listed)
		}
	}

	missing := newSmallest(opts.MaxReported)
	for w, word := range seen {
		free := ^word
		if w == len(seen)-1 && total%64 != 0 {
			free &= uint64(1)<<(total%64) - 1
		}
		for free != 0 {
			b := bits.TrailingZeros64(free)
			free &^= uint64(1) << b
			key := want.Key(w*64 + b)
			report.MissingCount++
			missing.add(key, key)
		}
	}
	report.Missing = missing.sorted()
	report.WrongSize = wrong.sorted()
	return report, nil
}

// smallest keeps the n entries with the smallest keys, in bounded memory.
type smallest struct {
	n       int
	entries []entry
}

type entry struct{ key, text string }

func newSmallest(n int) *smallest { return &smallest{n: n} }

func (s *smallest) add(key, text string) {
	s.entries = append(s.entries, entry{key, text})
	if len(s.entries) >= 2*s.n+64 {
		s.trim()
	}
}

func (s *smallest) trim() {
	slices.SortFunc(s.entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	if len(s.entries) > s.n {
		s.entries = slices.Clip(s.entries[:s.n])
	}
}

func (s *smallest) sorted() []string {
	s.trim()
	if len(s.entries) == 0 {
		return nil
	}
	out := make([]string, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.text
	}
	return out
}

// Sources is an Expected over the tasks' sources, for callers that hold the
// tasks (tests, small jobs): it keeps a map of every source key.
type Sources struct {
	tasks []Task
	index map[string]int
}

// NewSources indexes tasks by source key. A source named twice is an error.
func NewSources(tasks []Task) (*Sources, error) {
	s := &Sources{tasks: tasks, index: make(map[string]int, len(tasks))}
	for i, t := range tasks {
		if _, dup := s.index[t.Src]; dup {
			return nil, fmt.Errorf("source %q is named by two tasks", t.Src)
		}
		s.index[t.Src] = i
	}
	return s, nil
}

func (s *Sources) Len() int { return len(s.tasks) }

func (s *Sources) Lookup(key string) (int, uint64, bool) {
	i, ok := s.index[key]
	if !ok {
		return 0, 0, false
	}
	return i, s.tasks[i].Size, true
}

func (s *Sources) Key(i int) string { return s.tasks[i].Src }

var _ Expected = (*Sources)(nil)
