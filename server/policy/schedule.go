// Package policy is the leader duty that runs snapshot policies: it computes each
// policy's due times from its schedule and proposes one PolicyRun per due time (the
// FSM refuses a due time at or before the last, so a leader change at the due time
// still yields one run), and proposes PolicyRetain when a policy's retention has
// something to expire. Times come from the cluster clock (the median of the voters' clocks); after the cluster was
// down across several due times, one catch-up run is taken, for the latest.
package policy

import (
	"fmt"
	"time"
	// The zone database, built in: a node without the system's zoneinfo (a minimal
	// container) still loads a policy's zone. The system's files win when present.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Schedule is a policy's compiled schedule: due times from a cron expression in a
// time zone, or every interval from an anchor.
//
// Cron times are wall-clock times in the zone. Across daylight-saving changes (the
// rules of Vixie cron): a time the change skips (02:30 on the night clocks go from
// 02:00 to 03:00) is due at the first instant after the change; a time that occurs
// twice (clocks go back) is due once, at its first occurrence — unless the hour field
// is "*", when a schedule runs in every elapsed hour, both occurrences included.
type Schedule struct {
	loc      *time.Location
	spec     *cron.SpecSchedule // in UTC: iterates wall-clock times
	everyHr  bool
	interval time.Duration
	anchor   time.Time
}

const allHours = 1<<24 - 1

// Compile compiles p's schedule. It loads the time zone (the node's tzdata), so it
// can fail where the FSM's validation passed.
func Compile(p *fsmpb.Policy) (*Schedule, error) {
	s := p.GetSchedule()
	if s.GetInterval() > 0 {
		return &Schedule{loc: time.UTC, interval: time.Duration(s.Interval), anchor: time.Unix(0, p.ScheduleFrom).UTC()}, nil
	}
	spec, err := fsm.ParseCron(s.GetCron())
	if err != nil {
		return nil, err
	}
	loc, err := LoadZone(s.GetTimeZone())
	if err != nil {
		return nil, err
	}
	floating := *spec
	floating.Location = time.UTC
	return &Schedule{loc: loc, spec: &floating, everyHr: spec.Hour&allHours == allHours}, nil
}

// LoadZone loads an IANA time zone ("" is UTC).
func LoadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	return loc, nil
}

// Location is the zone due times are rendered in.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next is the first due time after t (the zero time if there is none within five
// years).
func (s *Schedule) Next(t time.Time) time.Time {
	if s.interval > 0 {
		if t.Before(s.anchor) {
			return s.anchor.Add(s.interval)
		}
		k := t.Sub(s.anchor)/s.interval + 1
		return s.anchor.Add(k * s.interval)
	}
	// Walk wall-clock times from a little before t's (a repeated hour's second
	// occurrences have earlier wall times than instants before them) and keep the
	// earliest instant after t. Instants grow with wall times, but for second
	// occurrences, which come at most a few hours later: stop once a wall time's
	// first instant passes the best found.
	var best time.Time
	w := s.spec.Next(wall(t.In(s.loc)).Add(-4 * time.Hour))
	for i := 0; i < 100_000 && !w.IsZero(); i++ {
		first, second, ok := s.instants(w)
		if !best.IsZero() && first.After(best) {
			break
		}
		for _, c := range []time.Time{first, second} {
			if ok && !c.IsZero() && c.After(t) && (best.IsZero() || c.Before(best)) {
				best = c
			}
		}
		w = s.spec.Next(w)
	}
	return best
}

// Latest is the latest due time in (after, now], if any: the one run a scheduler
// takes when it finds one or more due times passed.
func (s *Schedule) Latest(after, now time.Time) (time.Time, bool) {
	next := s.Next(after)
	if next.IsZero() || next.After(now) {
		return time.Time{}, false
	}
	if s.interval > 0 {
		k := now.Sub(s.anchor) / s.interval
		return s.anchor.Add(k * s.interval), true
	}
	// Start close to now rather than walk every due time since after: a minute
	// schedule down for a month has 43,200.
	for _, back := range []time.Duration{time.Hour, 25 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour} {
		start := now.Add(-back)
		if !start.After(after) {
			break
		}
		if c := s.Next(start); !c.IsZero() && !c.After(now) {
			next = c
			break
		}
	}
	for {
		c := s.Next(next)
		if c.IsZero() || c.After(now) {
			return next, true
		}
		next = c
	}
}

// wall is t's wall-clock reading as a UTC time.
func wall(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
}

// instants are the instants whose wall clock in the zone reads w: first, and second
// when the hour repeats and the schedule runs every hour. A wall time the zone skips
// maps to the first instant after the skip.
func (s *Schedule) instants(w time.Time) (first, second time.Time, ok bool) {
	u := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, s.loc)
	// The zone's offsets a few hours either side: an instant reading w has one of them.
	_, before := u.Add(-4 * time.Hour).In(s.loc).Zone()
	_, after := u.Add(4 * time.Hour).In(s.loc).Zone()
	var found []time.Time
	for _, off := range []int{before, after} {
		c := w.Add(-time.Duration(off) * time.Second)
		if wall(c.In(s.loc)).Equal(w) && (len(found) == 0 || !found[0].Equal(c)) {
			found = append(found, c)
		}
	}
	if len(found) == 2 && found[1].Before(found[0]) {
		found[0], found[1] = found[1], found[0]
	}
	switch {
	case len(found) == 0:
		return s.gapEnd(u), time.Time{}, true
	case len(found) == 2 && s.everyHr:
		return found[0].In(s.loc), found[1].In(s.loc), true
	default:
		return found[0].In(s.loc), time.Time{}, true
	}
}

// gapEnd is the first instant after the skipped stretch around u: the offset change
// found by bisection.
func (s *Schedule) gapEnd(u time.Time) time.Time {
	lo, hi := u.Add(-4*time.Hour), u.Add(4*time.Hour)
	_, after := hi.In(s.loc).Zone()
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
		if _, off := mid.In(s.loc).Zone(); off == after {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// SnapshotName renders p's name template for a due time in the schedule's zone.
func (s *Schedule) SnapshotName(p *fsmpb.Policy, due time.Time) (string, error) {
	return fsm.RenderSnapshotName(p.NameTemplate, due.In(s.loc))
}

// NextRun is when p runs next: its next due time after the last one (or the
// schedule's start). Zero when disabled or when the schedule does not compile here.
func NextRun(p *fsmpb.Policy) time.Time {
	if !p.Enabled {
		return time.Time{}
	}
	s, err := Compile(p)
	if err != nil {
		return time.Time{}
	}
	return s.Next(base(p))
}

// base is what the next due time follows: the last due time run, or the start of the
// schedule.
func base(p *fsmpb.Policy) time.Time {
	return time.Unix(0, max(p.LastDue, p.ScheduleFrom))
}
