package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

func cronPolicy(expr, zone string) *fsmpb.Policy {
	return &fsmpb.Policy{Enabled: true, Schedule: &fsmpb.PolicySchedule{Cron: expr, TimeZone: zone}}
}

// dues lists every due time in (from, to].
func dues(t *testing.T, s *Schedule, from, to time.Time) []time.Time {
	t.Helper()
	var out []time.Time
	for at := s.Next(from); !at.IsZero() && !at.After(to); at = s.Next(at) {
		require.True(t, at.After(from))
		if len(out) > 0 {
			require.True(t, at.After(out[len(out)-1]), "due times strictly increase")
		}
		out = append(out, at)
	}
	return out
}

// Europe/Berlin in 2026: clocks go 02:00 → 03:00 on March 29 and 03:00 → 02:00 on
// October 25.
func TestCronAcrossDaylightSaving(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	day := func(m time.Month, d int) (time.Time, time.Time) {
		start := time.Date(2026, m, d, 0, 0, 0, 0, berlin)
		return start.Add(-time.Nanosecond), start.AddDate(0, 0, 1).Add(-time.Nanosecond)
	}
	for _, tc := range []struct {
		name string
		expr string
		m    time.Month
		d    int
		want []string // UTC
	}{
		{"a skipped time runs at the change", "30 2 * * *", time.March, 29, []string{"01:00"}},
		{"a repeated time runs once", "30 2 * * *", time.October, 25, []string{"00:30"}},
		{"an ordinary day", "30 2 * * *", time.March, 28, []string{"01:30"}},
		{"every minute of a skipped hour runs once, at the change", "*/20 2 * * *", time.March, 29, []string{"01:00"}},
		{"a fixed hour repeated: its first occurrence only", "*/20 2 * * *", time.October, 25, []string{"00:00", "00:20", "00:40"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile(cronPolicy(tc.expr, "Europe/Berlin"))
			require.NoError(t, err)
			from, to := day(tc.m, tc.d)
			var got []string
			for _, at := range dues(t, s, from, to) {
				got = append(got, at.UTC().Format("15:04"))
			}
			require.Equal(t, tc.want, got)
		})
	}

	hourly, err := Compile(cronPolicy("0 * * * *", "Europe/Berlin"))
	require.NoError(t, err)
	from, to := day(time.March, 29)
	require.Len(t, dues(t, hourly, from, to), 23, "a 23-hour day")
	from, to = day(time.October, 25)
	require.Len(t, dues(t, hourly, from, to), 25, "a 25-hour day: both 02:00s run")
	from, to = day(time.October, 26)
	require.Len(t, dues(t, hourly, from, to), 24)
}

func TestIntervalAndLatest(t *testing.T) {
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := Compile(&fsmpb.Policy{Schedule: &fsmpb.PolicySchedule{Interval: int64(2 * time.Second)}, ScheduleFrom: anchor.UnixNano()})
	require.NoError(t, err)
	require.Equal(t, anchor.Add(2*time.Second), s.Next(anchor))
	require.Equal(t, anchor.Add(4*time.Second), s.Next(anchor.Add(2*time.Second)))
	require.Equal(t, anchor.Add(4*time.Second), s.Next(anchor.Add(3*time.Second)))
	// Down across three due times: one catch-up, for the latest.
	due, ok := s.Latest(anchor.Add(2*time.Second), anchor.Add(9*time.Second))
	require.True(t, ok)
	require.Equal(t, anchor.Add(8*time.Second), due)
	_, ok = s.Latest(anchor.Add(8*time.Second), anchor.Add(9*time.Second))
	require.False(t, ok)

	c, err := Compile(cronPolicy("* * * * *", ""))
	require.NoError(t, err)
	// A minute schedule down for 40 days: the latest due time, found without walking
	// 57,600 of them.
	due, ok = c.Latest(anchor, anchor.AddDate(0, 0, 40).Add(90*time.Second))
	require.True(t, ok)
	require.Equal(t, anchor.AddDate(0, 0, 40).Add(time.Minute), due)

	never, err := Compile(cronPolicy("0 0 30 2 *", ""))
	require.NoError(t, err)
	require.True(t, never.Next(anchor).IsZero(), "February 30 never comes")
	_, err = Compile(cronPolicy("0 2 * * *", "Mars/Olympus"))
	require.ErrorContains(t, err, "Mars/Olympus")
}
