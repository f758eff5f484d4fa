// Package clustertime is the clock a leader stamps on the commands it proposes: every
// time in the catalog (creation times, allocation and restore leases, GC and orphan
// graces, hold expiries, policy due times) is one of its readings, compared in Apply
// with later ones.
//
// A node's own wall clock can be wrong by seconds or days, and the leader changes;
// leases and graces measured on a clock that jumps forward would end early. So the
// cluster clock
//
//   - follows the median of the voters' wall clocks: a node's own reading and the
//     latest reading of each other voter (Sample), each carried forward on this node's
//     monotonic clock. One wrong clock among three voters moves nothing; the median
//     is only taken while a majority of the voters' readings are fresh.
//   - never runs backwards and never slower than real time: a reading is at least the
//     latest time this node saw applied (Observe) or stamped, plus the monotonic time
//     since. When the voters' clocks step back, cluster time keeps running until they
//     catch up.
//
// It can run ahead of real time only when a majority of the voters' clocks do. Safe for
// concurrent use.
package clustertime

import (
	"slices"
	"sync"
	"time"
)

// Fresh is how long a voter's reading counts toward the median.
const Fresh = 5 * time.Second

// Clock is one node's view of cluster time. The zero value is not usable: use New.
type Clock struct {
	wall func() time.Time // the node's wall clock (wallclock.Now)

	mu sync.Mutex
	// floor is the latest cluster time seen (applied or stamped) and floorAt the
	// monotonic time it was seen: cluster time is at least floor + time.Since(floorAt).
	floor   int64
	floorAt time.Time
	voters  int // voters in the configuration, this node included (0: not known yet)
	peers   map[string]reading
}

// reading is a voter's wall clock: wall at the monotonic time at.
type reading struct {
	wall int64
	at   time.Time
}

// New returns a clock reading the node's wall clock through wall.
func New(wall func() time.Time) *Clock {
	return &Clock{wall: wall, peers: map[string]reading{}}
}

// SetVoters records the voters other than this node; readings of others are dropped.
func (c *Clock) SetVoters(others []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.voters = len(others) + 1
	for id := range c.peers {
		if !slices.Contains(others, id) {
			delete(c.peers, id)
		}
	}
}

// Sample records voter id's wall clock wall (Unix ns), read by a call sent at the
// monotonic time sent that returned at received: the reading is taken to be from the
// call's midpoint.
func (c *Clock) Sample(id string, wall int64, sent, received time.Time) {
	mid := sent.Add(received.Sub(sent) / 2)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peers[id] = reading{wall: wall, at: mid}
}

// Observe records a cluster time this node applied.
func (c *Clock) Observe(t int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raise(t, time.Now())
}

func (c *Clock) raise(t int64, at time.Time) {
	if t > c.continued(at) {
		c.floor, c.floorAt = t, at
	}
}

// continued is the floor carried forward to the monotonic time at.
func (c *Clock) continued(at time.Time) int64 {
	if c.floorAt.IsZero() {
		return 0
	}
	return c.floor + int64(at.Sub(c.floorAt))
}

// Now returns the cluster time to stamp on a command (Unix ns) and records it.
func (c *Clock) Now() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := time.Now()
	t := c.continued(at)
	if m, ok := c.median(at); ok {
		t = max(t, m)
	} else if t == 0 {
		// Nothing seen yet and no majority of readings: a new cluster's first leader.
		t = c.wall().UnixNano()
	}
	c.raise(t, at)
	return t
}

// median is the median of this node's reading and the fresh ones of the other
// voters, carried forward to at; ok is false without a majority of the voters. Of two
// middle readings it takes the lower.
func (c *Clock) median(at time.Time) (int64, bool) {
	var buf [8]int64 // no allocation on the write path for up to 8 voters
	clocks := append(buf[:0], c.wall().UnixNano())
	for _, r := range c.peers {
		if age := at.Sub(r.at); age < Fresh {
			clocks = append(clocks, r.wall+int64(age))
		}
	}
	if c.voters == 0 || len(clocks) < c.voters/2+1 {
		return 0, false
	}
	slices.Sort(clocks)
	return clocks[(len(clocks)-1)/2], true
}

// Offsets returns each voter's clock minus this node's, from the fresh readings.
func (c *Clock) Offsets() map[string]time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := time.Now()
	own := c.wall().UnixNano()
	out := map[string]time.Duration{}
	for id, r := range c.peers {
		if age := at.Sub(r.at); age < Fresh {
			out[id] = time.Duration(r.wall + int64(age) - own)
		}
	}
	return out
}
