package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// in is c for subtest t: a failure ends the subtest, not its parent.
func (c *cli) in(t *testing.T) *cli {
	return &cli{t: t, cluster: c.cluster, emb: c.emb, store: c.store}
}

// describePolicy reads a policy through the CLI's JSON output.
func (c *cli) describePolicy(name string) *snapkeepv1.Policy {
	c.t.Helper()
	var resp snapkeepv1.DescribePolicyResponse
	require.NoError(c.t, protojson.Unmarshal([]byte(c.ok("policy", "describe", name, "-o", "json")), &resp))
	return resp.GetPolicy()
}

// waitPolicy polls the policy until done says so; the bound only keeps a broken
// scheduler from hanging the test.
func (c *cli) waitPolicy(name, what string, done func(*snapkeepv1.Policy) bool) *snapkeepv1.Policy {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := c.describePolicy(name)
		if done(p) {
			return p
		}
		require.True(c.t, time.Now().Before(deadline), "policy %q: still not %s after 20s: %v", name, what, p.GetStatus())
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPolicyAndHoldCommands runs the policy and hold commands against one cluster:
// a policy's life (a scheduled run, update, execute, preview, delete), holds (the
// refused drops and removals), and the usage errors.
func TestPolicyAndHoldCommands(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("collection", "create", "docs")

	t.Run("policy", func(t *testing.T) {
		c := c.in(t)
		args := []string{"policy", "create", "auto", "--collections", "docs", "--every", "1s",
			"--name-template", "auto-{2006.01.02-15.04.05.000}", "--label", "team=search", "--description", "every second",
			"--keep-max", "2", "--keep-min", "1", "--retention-every", "1h"}
		out := c.ok(args...)
		require.Contains(t, out, "Created policy \"auto\".\n")
		require.Regexp(t, `(?m)^Policy:\s+auto \(id \d+, revision 1\)$`, out)
		require.Regexp(t, `(?m)^Collections:\s+docs \(database default\)$`, out)
		require.Regexp(t, `(?m)^Schedule:\s+every 1s$`, out)
		require.Regexp(t, `(?m)^Labels:\s+snapkeep\.policy=auto, team=search$`, out)
		require.Regexp(t, `(?m)^Retention:\s+keep at most 2, keep at least 1 per collection; checked every 1h$`, out)
		require.Regexp(t, `(?m)^Next run:\s+\d{4}-\d\d-\d\dT`, out)
		require.Contains(t, c.ok(args...), "Policy \"auto\" already existed with these settings.")

		// The leader runs it within a second or so. Its retention was checked at that
		// pass and next in an hour, so the preview below is stable.
		p := c.waitPolicy("auto", "run on schedule", func(p *snapkeepv1.Policy) bool { return p.GetStatus().GetSnapshotsTaken() >= 1 })
		require.NotZero(t, p.GetStatus().GetLastDueUnixMs())

		out = c.ok("policy", "update", "auto", "--disable", "--collections", "docs,missing", "--unset-label", "team")
		require.Regexp(t, `Updated policy "auto" \(revision \d+\)`, out)
		require.Regexp(t, `(?m)^Enabled:\s+no$`, out)
		require.Regexp(t, `(?m)^Next run:\s+- \(disabled\)$`, out)
		require.Regexp(t, `(?m)^Labels:\s+snapkeep\.policy=auto$`, out)
		require.Regexp(t, `(?m)^Collections:\s+docs, missing \(database default\)$`, out)
		require.Regexp(t, `(?m)^Retention:\s+keep at most 2, keep at least 1 per collection; checked every 1h$`, out, "kept: not given")

		// A collection that does not exist fails the run for it, not for the others.
		r := c.run("policy", "execute", "auto", "--wait")
		require.Equal(t, exitError, r.code, r.stderr)
		require.Contains(t, r.stdout, "Ran policy \"auto\": 1 snapshots taken, 1 collections failed.")
		require.Regexp(t, `(?m)^docs\s+auto-\S+\s+\d+\s+committed\s+-$`, r.stdout)
		require.Regexp(t, `(?m)^missing\s+-\s+-\s+-\s+.*"missing" not found`, r.stdout)
		require.Contains(t, r.stderr, `Error: policy "auto": 1 of 2 collections have no committed snapshot: missing: `)

		c.ok("policy", "update", "auto", "--collections", "docs")
		out = c.ok("policy", "execute", "auto", "--wait")
		require.Regexp(t, `(?m)^docs\s+auto-\S+\s+\d+\s+committed\s+-$`, out)
		out = c.ok("policy", "execute", "auto", "-o", "json")
		var run snapkeepv1.ExecutePolicyResponse
		require.NoError(t, protojson.Unmarshal([]byte(out), &run))
		require.Len(t, run.GetResults(), 1)
		require.NotZero(t, run.GetResults()[0].GetSnapshotId())

		out = c.ok("policy", "list")
		require.Regexp(t, `(?m)^NAME\s+SCHEDULE\s+ENABLED\s+NEXT RUN\s+LAST SUCCESS\s+LAST FAILURE\s+TAKEN/FAILED/DELETED$`, out)
		require.Regexp(t, `(?m)^auto\s+every 1s\s+no\s+- \(disabled\)\s+\d{4}-\S+\s+\d{4}-\S+\s+\d+/1/0$`, out)

		out = c.ok("policy", "describe", "auto")
		require.Regexp(t, `(?m)^Runs:\s+\d+, the last at \S+ \(on request\)$`, out)
		require.Regexp(t, `(?m)^Last failure:\s+\S+: the run on request at \S+: 1 failed: collection "missing" not found`, out)
		require.Regexp(t, `(?m)^Last success:\s+\S+: snapshot "auto-\S+" of collection "docs" committed$`, out)

		// At least three committed (one scheduled, two executed): the oldest beyond the
		// newest two would expire.
		out = c.ok("policy", "preview", "auto")
		require.Regexp(t, `Retention of policy "auto" at \S+: \d+ of its \d+ committed snapshots would expire\.`, out)
		require.Regexp(t, `(?m)^ID\s+COLLECTION\s+SNAPSHOT\s+CREATED\s+DECISION\s+REASON$`, out)
		require.Regexp(t, `(?m)^\d+\s+docs\s+auto-\S+\s+\S+\s+DELETE\s+\d+ newer snapshots, the maximum is 2$`, out)
		require.Regexp(t, `(?m)^\d+\s+docs\s+auto-\S+\s+\S+\s+KEEP\s+within the retention$`, out)

		// Its snapshots say which policy took them, and when it was due.
		out = c.ok("snapshot", "list", "--label", "snapkeep.policy=auto", "--state", "committed")
		require.Regexp(t, `(?m)^ID\s+COLLECTION\s+NAME\s+STATE\s+CREATED\s+SEGMENTS\s+FILES\s+SIZE\s+EXCLUSIVE\s+SHARED\s+VERIFIED\s+HELD\s+POLICY\s+LABELS$`, out)
		require.Regexp(t, `(?m)^\d+\s+docs\s+auto-\S+\s+committed\s+.*\s+-\s+auto\s+snapkeep\.policy=auto`, out)
		first := regexp.MustCompile(`(?m)^\d+\s+docs\s+(auto-\S+)\s`).FindStringSubmatch(out)
		require.NotNil(t, first, out)
		require.Regexp(t, `(?m)^Policy:\s+auto, due \d{4}-\S+$`, c.ok("snapshot", "describe", "docs", first[1]),
			"the first is the scheduled run's")

		out = c.ok("policy", "delete", "auto")
		require.Contains(t, out, "Deleted policy \"auto\". The snapshots it took stay, no longer expired: snapkeep snapshot list --label snapkeep.policy=auto")
		require.Equal(t, "No policy \"auto\": nothing to delete.\n", c.ok("policy", "delete", "auto"))
		r = c.run("policy", "describe", "auto")
		require.Equal(t, exitError, r.code)
		require.Contains(t, r.stderr, "Error: not found:")
		require.Regexp(t, `(?m)^\d+\s+docs\s+auto-\S+\s+committed\s+.*\s+-\s+\(deleted\)\s+`,
			c.ok("snapshot", "list", "--label", "snapkeep.policy=auto"))
	})

	t.Run("cron policy", func(t *testing.T) {
		c := c.in(t)
		out := c.ok("policy", "create", "nightly", "--glob", "*", "--cron", "0 2 * * *", "--time-zone", "Europe/Berlin",
			"--name-template", "nightly-{2006.01.02}", "--expire-after", "30d")
		require.Regexp(t, `(?m)^Schedule:\s+cron "0 2 \* \* \*" \(Europe/Berlin\)$`, out)
		require.Regexp(t, `(?m)^Collections:\s+every active collection of database default matching "\*"$`, out)
		require.Regexp(t, `(?m)^Retention:\s+expire after 30d per collection; checked every 1m$`, out)
		out = c.ok("policy", "update", "nightly", "--cron", "30 3 * * *")
		require.Regexp(t, `(?m)^Schedule:\s+cron "30 3 \* \* \*" \(Europe/Berlin\)$`, out, "a new expression keeps its zone")
		out = c.ok("policy", "update", "nightly", "--every", "12h", "--name-template", "half-{2006.01.02-15}")
		require.Regexp(t, `(?m)^Schedule:\s+every 12h$`, out)
		require.Regexp(t, `(?m)^Name template:\s+half-\{2006\.01\.02-15\}$`, out, "update changes the template")
		r := c.run("policy", "update", "nightly", "--time-zone", "UTC")
		require.Equal(t, exitUsage, r.code, r.stderr)
		require.Contains(t, r.stderr, `--time-zone applies to a cron schedule; policy "nightly" runs every 12h: give --cron too`)
		r = c.run("policy", "create", "bad", "--glob", "*", "--every", "1h", "--name-template", "same")
		require.Equal(t, exitError, r.code)
		require.Contains(t, r.stderr, "has no time in braces")
		c.ok("policy", "delete", "nightly")
	})

	t.Run("holds", func(t *testing.T) {
		c := c.in(t)
		c.ok("snapshot", "create", "docs", "kept")
		out := c.ok("snapshot", "hold", "add", "docs", "kept", "--reason", "legal review")
		open := regexp.MustCompile(`^Added hold (\d+) to snapshot "kept" of "docs", until removed: snapkeep snapshot hold remove docs kept (\d+)\n$`).FindStringSubmatch(out)
		require.NotNil(t, open, out)
		require.Equal(t, open[1], open[2])
		require.Regexp(t, `(?m)^\d+\s+docs\s+kept\s+committed\s+.*\s+held\s+-\s+-$`, c.ok("snapshot", "list", "--collection", "docs"))
		out = c.ok("snapshot", "describe", "docs", "kept")
		require.Regexp(t, `(?m)^Held:\s+yes, until removed \(1 active holds\): it cannot be dropped or expired$`, out)
		require.Regexp(t, `(?m)^`+open[1]+`\s+legal review\s+until removed\s+active\s+\S+$`, out)

		r := c.run("snapshot", "drop", "docs", "kept")
		require.Equal(t, exitError, r.code)
		require.Contains(t, r.stderr, `snapshot "kept" is held (hold `+open[1]+`: legal review); remove the hold first`)
		out = c.ok("snapshot", "hold", "remove", "docs", "kept", open[1])
		require.Equal(t, `Removed hold `+open[1]+` from snapshot "kept" of "docs"; it is no longer held.`+"\n", out)
		require.Regexp(t, `(?m)^Held:\s+no$`, c.ok("snapshot", "describe", "docs", "kept"))

		// Held until a time to come: nobody drops it or removes the hold before then.
		out = c.ok("snapshot", "hold", "add", "docs", "kept", "--reason", "audit 2026", "--until", "1h")
		locked := regexp.MustCompile(`^Added hold (\d+) to snapshot "kept" of "docs", until (\S+): nobody, admins included, can drop the snapshot or remove the hold before then\.\n$`).FindStringSubmatch(out)
		require.NotNil(t, locked, out)
		until, err := time.Parse(time.RFC3339, locked[2])
		require.NoError(t, err)
		require.WithinRange(t, until, time.Now().Add(59*time.Minute), time.Now().Add(61*time.Minute))
		require.Regexp(t, `(?m)^\d+\s+docs\s+kept\s+committed\s+.*\s+held until `+regexp.QuoteMeta(locked[2])+`\s+-\s+-$`,
			c.ok("snapshot", "list", "--collection", "docs"))
		require.Regexp(t, `(?m)^`+locked[1]+`\s+audit 2026\s+`+regexp.QuoteMeta(locked[2])+`\s+active\s+`, c.ok("snapshot", "describe", "docs", "kept"))

		r = c.run("snapshot", "drop", "docs", "kept")
		require.Equal(t, exitError, r.code)
		require.Regexp(t, `^Error: failed precondition: snapshot "kept" is held until \S+ \(hold `+locked[1]+`: audit 2026\); `+
			`nobody, admins included, can drop it before then\n$`, r.stderr)
		r = c.run("snapshot", "hold", "remove", "docs", "kept", locked[1])
		require.Equal(t, exitError, r.code)
		require.Contains(t, r.stderr, "nobody, admins included, can remove it before then")
		require.Contains(t, c.ok("snapshot", "describe", "docs", "kept"), "State:")

		r = c.run("snapshot", "hold", "add", "docs", "nope", "--reason", "x")
		require.Equal(t, exitError, r.code)
		require.Contains(t, r.stderr, `snapshot "nope" not found`)
	})

	t.Run("usage errors", func(t *testing.T) {
		c := c.in(t)
		before := len(c.sent())
		for _, tt := range []struct {
			args []string
			msg  string
		}{
			{[]string{"policy", "create", "p", "--every", "1h", "--name-template", "p-{15}"}, "give --collections a,b or --glob PATTERN"},
			{[]string{"policy", "create", "p", "--glob", "*", "--name-template", "p-{15}"}, "give --cron \"EXPR\" or --every DURATION"},
			{[]string{"policy", "create", "p", "--glob", "*", "--every", "1h"}, "--name-template is required"},
			{[]string{"policy", "create", "p", "--glob", "*", "--collections", "a", "--every", "1h"}, "--collections and --glob exclude each other"},
			{[]string{"policy", "create", "p", "--glob", "*", "--cron", "@daily", "--every", "1h"}, "--cron and --every exclude each other"},
			{[]string{"policy", "create", "p", "--glob", "*", "--every", "1h", "--time-zone", "UTC", "--name-template", "x-{15}"}, "--time-zone applies to a --cron schedule"},
			{[]string{"policy", "create", "p", "--glob", "*", "--every", "soon"}, `invalid argument "soon" for "--every"`},
			{[]string{"policy", "create", "p", "--glob", "*", "--every", "-1s", "--name-template", "x-{15}"}, "--every -1s: want a positive interval"},
			{[]string{"policy", "update", "p"}, "nothing to change"},
			{[]string{"policy", "update", "p", "--enable", "--disable"}, "--enable and --disable exclude each other"},
			{[]string{"policy", "update", "p", "--no-export", "--export-to", "r"}, "--no-export stops exporting"},
			{[]string{"policy", "update", "p", "--no-export", "--export-keep-max", "3"}, "--no-export stops exporting"},
			{[]string{"policy", "create", "p", "--glob", "*", "--every", "1h", "--name-template", "x-{15}", "--export-keep-max", "3"}, "an export retention needs --export-to REPO"},
			{[]string{"policy", "execute"}, `"snapkeep policy execute" takes NAME`},
			{[]string{"snapshot", "hold", "add", "docs", "kept"}, "--reason is required"},
			{[]string{"snapshot", "hold", "add", "docs", "kept", "--reason", "r", "--until", "tomorrow"}, `--until: "tomorrow" is neither an RFC 3339 time`},
			{[]string{"snapshot", "hold", "remove", "docs", "kept", "abc"}, `HOLD_ID "abc" is not a hold id`},
		} {
			r := c.run(tt.args...)
			require.Equal(t, exitUsage, r.code, "%q: %s", tt.args, r.stderr)
			require.Contains(t, r.stderr, tt.msg, "%q", tt.args)
		}
		require.Len(t, c.sent(), before, "a bad command line must not reach the server")
	})
}

func TestParseDurationAndUntil(t *testing.T) {
	for in, want := range map[string]time.Duration{"2s": 2 * time.Second, "90m": 90 * time.Minute, "30d": 30 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, " 6h ": 6 * time.Hour} {
		got, err := parseDuration(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "d", "1dd", "soon", "1y"} {
		_, err := parseDuration(bad)
		require.Error(t, err, bad)
	}
	for d, want := range map[time.Duration]string{2 * time.Second: "2s", 6 * time.Hour: "6h", 90 * time.Minute: "1h30m",
		30 * 24 * time.Hour: "30d", 36 * time.Hour: "36h", 1500 * time.Millisecond: "1.5s"} {
		require.Equal(t, want, shortDuration(d))
	}

	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	got, err := parseUntil("720h", now)
	require.NoError(t, err)
	require.Equal(t, now.Add(720*time.Hour), got)
	got, err = parseUntil("2027-01-31T00:00:00+01:00", now)
	require.NoError(t, err)
	require.True(t, got.Equal(time.Date(2027, 1, 30, 23, 0, 0, 0, time.UTC)), got)
	_, err = parseUntil("0s", now)
	require.ErrorContains(t, err, "want a time to come")
	_, err = parseUntil("next week", now)
	require.ErrorContains(t, err, "neither an RFC 3339 time")
	require.True(t, strings.HasPrefix(shortDuration(0), "0"))
}
