package clustertime

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// skewed is a wall clock off by an offset the test changes.
type skewed struct{ offset atomic.Int64 }

func (s *skewed) now() time.Time { return time.Now().Add(time.Duration(s.offset.Load())) }

func (s *skewed) set(d time.Duration) { s.offset.Store(int64(d)) }

// near says whether cluster time t (ns) is within a second of the real clock.
func near(t *testing.T, ns int64) {
	t.Helper()
	require.InDelta(t, float64(time.Now().UnixNano()), float64(ns), float64(time.Second), "cluster time %v, real %v", time.Unix(0, ns), time.Now())
}

func TestClusterTime(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name string
		own  time.Duration   // this node's clock error
		rest []time.Duration // the other voters' errors
		// want: the cluster time's error (a second's tolerance)
		want time.Duration
	}{
		{name: "all right", rest: []time.Duration{0, 0}},
		{name: "own clock a day ahead", own: day, rest: []time.Duration{0, 0}},
		{name: "own clock three days behind", own: -3 * day, rest: []time.Duration{0, 0}},
		{name: "one other clock a day ahead", rest: []time.Duration{day, 0}},
		{name: "one other clock an hour behind", rest: []time.Duration{-time.Hour, 0}},
		{name: "own ahead, one other behind", own: day, rest: []time.Duration{-day, 0}},
		{name: "five voters, two ahead", own: day, rest: []time.Duration{day, 0, 0, 0}},
		{name: "a majority ahead moves it (the documented limit)", own: day, rest: []time.Duration{day, 0}, want: day},
		{name: "single voter", own: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			own := &skewed{}
			own.set(tc.own)
			c := New(own.now)
			var ids []string
			for i, d := range tc.rest {
				id := string(rune('b' + i))
				ids = append(ids, id)
				sent := time.Now()
				c.Sample(id, time.Now().Add(d).UnixNano(), sent, time.Now())
			}
			c.SetVoters(ids)
			near(t, c.Now()-int64(tc.want))
		})
	}
}

func TestClusterTimeNeverRunsBackwards(t *testing.T) {
	own := &skewed{}
	c := New(own.now)
	c.SetVoters(nil)
	first := c.Now()
	near(t, first)
	// The only voter's clock steps back an hour: time keeps running from where it was.
	own.set(-time.Hour)
	prev := first
	for range 5 {
		time.Sleep(2 * time.Millisecond)
		now := c.Now()
		require.Greater(t, now, prev)
		prev = now
	}
	near(t, prev)
	// A clock stepped forward is followed (one voter is the majority).
	own.set(time.Hour)
	near(t, c.Now()-int64(time.Hour))
}

func TestClusterTimeWithoutAMajorityOfReadings(t *testing.T) {
	own := &skewed{}
	own.set(24 * time.Hour)
	c := New(own.now)
	c.SetVoters([]string{"b", "c"}) // no readings of b and c
	applied := time.Now().Add(-time.Second).UnixNano()
	c.Observe(applied)
	// Carried forward from what was applied, not the node's own (wrong) clock.
	now := c.Now()
	require.GreaterOrEqual(t, now, applied)
	require.Less(t, now, applied+int64(100*time.Millisecond))

	// A reading gone stale does not count.
	c.Sample("b", time.Now().Add(24*time.Hour).UnixNano(), time.Now().Add(-Fresh-time.Second), time.Now().Add(-Fresh-time.Second))
	require.Less(t, c.Now(), applied+int64(100*time.Millisecond))
}

func TestClusterTimeOfANewCluster(t *testing.T) {
	own := &skewed{}
	c := New(own.now) // voters unknown, nothing applied
	near(t, c.Now())
}

func TestObserveRaisesTheFloor(t *testing.T) {
	own := &skewed{}
	own.set(-time.Hour)
	c := New(own.now)
	c.SetVoters(nil)
	ahead := time.Now().Add(time.Minute).UnixNano()
	c.Observe(ahead)
	require.GreaterOrEqual(t, c.Now(), ahead)
	require.Contains(t, []int{0}, len(c.Offsets()))
}

func TestOffsets(t *testing.T) {
	c := New(time.Now)
	c.Sample("b", time.Now().Add(time.Hour).UnixNano(), time.Now(), time.Now())
	c.SetVoters([]string{"b"})
	off := c.Offsets()
	require.InDelta(t, float64(time.Hour), float64(off["b"]), float64(100*time.Millisecond))
}

// TestNowDoesNotAllocate: Now is on every write's path.
func TestNowDoesNotAllocate(t *testing.T) {
	c := New(time.Now)
	c.Sample("b", time.Now().UnixNano(), time.Now(), time.Now())
	c.Sample("c", time.Now().UnixNano(), time.Now(), time.Now())
	c.SetVoters([]string{"b", "c"})
	require.Zero(t, testing.AllocsPerRun(100, func() { c.Now() }))
}
