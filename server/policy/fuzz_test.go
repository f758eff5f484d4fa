package policy

import (
	"testing"
	"time"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// fuzzZones are zones with the daylight-saving rules that make due times hard:
// half-hour changes (Lord Howe), a skipped day (Apia, 2011), a change at midnight
// (Santiago), odd offsets (Kathmandu).
var fuzzZones = []string{"", "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia",
	"America/Santiago", "Asia/Kathmandu"}

// FuzzSchedule: every schedule the FSM accepts either does not compile on a node
// (an error, never a panic) or gives due times that behave: Next is after the time
// it is given, or zero; Latest lies in (after, now] with no due time between it and
// now; the name template renders at each due time or says why not.
func FuzzSchedule(f *testing.F) {
	f.Add("0 3 * * *", uint8(2), int64(1_790_000_000), int64(0), int64(86_400*3), "nightly-{2006-01-02}")
	f.Add("30 2 * * *", uint8(2), int64(1_774_740_000), int64(0), int64(86_400), "{2006.01.02-15.04}")
	f.Add("0 * * * *", uint8(3), int64(1_793_500_000), int64(0), int64(7_200), "h-{15}")
	f.Add("*/15 * * * *", uint8(4), int64(1_775_300_000), int64(0), int64(3_600), "q-{150405}")
	f.Add("0 0 29 2 *", uint8(5), int64(1_325_000_000), int64(0), int64(86_400*400), "leap-{2006}")
	f.Add("@daily", uint8(6), int64(1_775_000_000), int64(0), int64(86_400*2), "d-{2006-01-02}")
	f.Add("", uint8(0), int64(1_790_000_000), int64(7_200), int64(86_400), "i-{20060102-1504}")
	f.Add("", uint8(0), int64(1_790_000_000), int64(1), int64(10), "s-{150405.000}")
	f.Fuzz(func(t *testing.T, expr string, zone uint8, fromSec, intervalSec, spanSec int64, template string) {
		from := time.Unix(1_000_000_000+abs(fromSec)%(5_000_000_000), 0) // 2001–2160
		span := time.Duration(abs(spanSec)%(40*86_400)) * time.Second    // up to 40 days
		p := &fsmpb.Policy{Name: "p", Collections: []string{"c"}, NameTemplate: template, Enabled: true,
			ScheduleFrom: from.UnixNano()}
		if intervalSec != 0 {
			p.Schedule = &fsmpb.PolicySchedule{Interval: intervalSec * int64(time.Second)}
		} else {
			p.Schedule = &fsmpb.PolicySchedule{Cron: expr, TimeZone: fuzzZones[int(zone)%len(fuzzZones)]}
		}
		if fsm.ValidatePolicy(p) != nil {
			return
		}
		s, err := Compile(p)
		if err != nil {
			return
		}
		at := from
		for range 4 {
			next := s.Next(at)
			if next.IsZero() {
				break
			}
			if !next.After(at) {
				t.Fatalf("Next(%v) = %v, not after it", at, next)
			}
			_, _ = s.SnapshotName(p, next)
			at = next
		}
		now := from.Add(span)
		latest, ok := s.Latest(from, now)
		if !ok {
			if n := s.Next(from); !n.IsZero() && !n.After(now) {
				t.Fatalf("Latest(%v, %v) found nothing, yet %v is due", from, now, n)
			}
			return
		}
		if !latest.After(from) || latest.After(now) {
			t.Fatalf("Latest(%v, %v) = %v, outside (after, now]", from, now, latest)
		}
		if n := s.Next(latest); !n.IsZero() && !n.After(now) {
			t.Fatalf("Latest(%v, %v) = %v, yet %v is due after it", from, now, latest, n)
		}
	})
}

func abs(x int64) int64 {
	if x < 0 {
		if x == -x { // the minimum int64
			return 0
		}
		return -x
	}
	return x
}
