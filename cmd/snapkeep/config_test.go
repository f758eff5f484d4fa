package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "snapkeep.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

// loadServerConfig parses args into a fresh server command and applies env and file.
func loadServerConfig(t *testing.T, env map[string]string, args ...string) (*cobra.Command, flagSources, error) {
	t.Helper()
	cmd := newServerCmd()
	require.NoError(t, cmd.ParseFlags(args))
	sources := flagSources{}
	err := loadConfig(cmd.LocalFlags(), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, sources)
	return cmd, sources, err
}

func flagValue(t *testing.T, cmd *cobra.Command, name string) string {
	t.Helper()
	f := cmd.Flags().Lookup(name)
	require.NotNil(t, f, name)
	return f.Value.String()
}

// TestConfigPrecedence: flag > env > file > default, for every kind of source.
func TestConfigPrecedence(t *testing.T) {
	path := writeConfig(t, `
node-id: from-file
grpc-addr: 127.0.0.1:9001
raft-addr: 127.0.0.1:9011
gc-interval: 2m
restore-concurrency: 3
`)
	env := map[string]string{
		"SNAPKEEP_CONFIG":              path,
		"SNAPKEEP_GRPC_ADDR":           "127.0.0.1:8001",
		"SNAPKEEP_RESTORE_CONCURRENCY": "5",
	}
	cmd, src, err := loadServerConfig(t, env, "--restore-concurrency", "7")
	require.NoError(t, err)
	require.Equal(t, "7", flagValue(t, cmd, "restore-concurrency"))     // flag over env and file
	require.Equal(t, "127.0.0.1:8001", flagValue(t, cmd, "grpc-addr"))  // env over file
	require.Equal(t, "2m0s", flagValue(t, cmd, "gc-interval"))          // file over default
	require.Equal(t, "from-file", flagValue(t, cmd, "node-id"))         // file
	require.Equal(t, "1h0m0s", flagValue(t, cmd, "gc-orphan-interval")) // default
	require.Equal(t, "flag --restore-concurrency", src["restore-concurrency"])
	require.Equal(t, "env SNAPKEEP_GRPC_ADDR", src["grpc-addr"])
	require.Equal(t, path+":5", src["gc-interval"])
	require.Equal(t, "default", src["gc-orphan-interval"])
	// Only the command line counts as Changed.
	require.False(t, cmd.Flags().Lookup("gc-interval").Changed)

	// --config on the command line wins over SNAPKEEP_CONFIG.
	other := writeConfig(t, "node-id: other\n")
	cmd, _, err = loadServerConfig(t, env, "--config", other)
	require.NoError(t, err)
	require.Equal(t, "other", flagValue(t, cmd, "node-id"))
	require.Equal(t, "127.0.0.1:8001", flagValue(t, cmd, "grpc-addr"))
}

// TestConfigListAndMapValues: a YAML list fills a repeatable flag; a map fills a
// k=v,... flag (peers).
func TestConfigListAndMapValues(t *testing.T) {
	path := writeConfig(t, `
peers:
  n1: 127.0.0.1:7011
  n2: 127.0.0.1:7012
tags:
  - a
  - b,c
`)
	cmd := newServerCmd()
	var tags []string
	cmd.Flags().StringArrayVar(&tags, "tags", []string{"default"}, "a repeatable test flag")
	require.NoError(t, cmd.ParseFlags([]string{"--config", path}))
	require.NoError(t, loadConfig(cmd.LocalFlags(), func(string) (string, bool) { return "", false }, flagSources{}))
	require.Equal(t, []string{"a", "b,c"}, tags)
	require.Equal(t, "n1=127.0.0.1:7011,n2=127.0.0.1:7012", flagValue(t, cmd, "peers"))

	// A list for a one-value flag is an error naming the key and line.
	bad := writeConfig(t, "grpc-addr:\n  - 127.0.0.1:1\n")
	_, _, err := loadServerConfig(t, nil, "--config", bad)
	require.ErrorContains(t, err, bad+":1: grpc-addr takes one value")
	bad = writeConfig(t, "grpc-addr: {a: b}\n")
	_, _, err = loadServerConfig(t, nil, "--config", bad)
	require.ErrorContains(t, err, bad+":1: grpc-addr takes a string, not a map")
}

// TestConfigUnknownKey names the key, the file and the line, and suggests a flag.
func TestConfigUnknownKey(t *testing.T) {
	path := writeConfig(t, "node-id: n1\n\ngrpc-adr: 127.0.0.1:7001\nbogus: 1\n")
	_, _, err := loadServerConfig(t, nil, "--config", path)
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, path+`:3: unknown key "grpc-adr" (did you mean "grpc-addr"?)`)
	require.Contains(t, msg, path+`:4: unknown key "bogus"`)
}

// TestConfigBadValues reports every bad value at once, each with the field, the value,
// where it came from and what is expected.
func TestConfigBadValues(t *testing.T) {
	path := writeConfig(t, `
gc-interval: soon
restore-concurrency: many
grpc-addr: localhost
log-level: loud
`)
	env := map[string]string{
		"SNAPKEEP_RESTORE_LEASE":  "5 minutes",
		"SNAPKEEP_GC_DELETE_RATE": "fast",
		"SNAPKEEP_DIAL_VIA":       "127.0.0.1:7011",
	}
	_, _, err := loadServerConfig(t, env, "--config", path, "--raft-addr", "nowhere")
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		`gc-interval: "soon" at ` + path + `:2 is not a duration such as 90s, 5m or 1h30m`,
		`restore-concurrency: "many" at ` + path + `:3 is not an integer`,
		`grpc-addr: "localhost" (from ` + path + `:4) is not a host:port address`,
		`log-level: "loud" (from ` + path + `:5) is not debug, info, warn or error`,
		`restore-lease: SNAPKEEP_RESTORE_LEASE="5 minutes" is not a duration`,
		`gc-delete-rate: SNAPKEEP_GC_DELETE_RATE="fast" is not a number`,
		`raft-addr: "nowhere" (from flag --raft-addr) is not a host:port address`,
		`dial-via: "127.0.0.1:7011" (from env SNAPKEEP_DIAL_VIA) is not FROM=TO,... with both host:port ("127.0.0.1:7011" is not FROM=TO)`,
	} {
		require.Contains(t, msg, want)
	}
}

// TestConfigServerValidationNamesTheSource: what server.Config.validate finds at start
// is reported per field, with where each value came from, all at once.
func TestConfigServerValidationNamesTheSource(t *testing.T) {
	path := writeConfig(t, "snapshots-per-collection: 200000\ngc-grace: -1s\n")
	t.Setenv("SNAPKEEP_CONFIG", path)
	t.Setenv("SNAPKEEP_RESTORE_RETENTION", "1s")
	var stderr bytes.Buffer
	code := execute(context.Background(), newRootCmd(), []string{"server", "--data-dir", t.TempDir(), "--peers", "n1=127.0.0.1:7011"}, &stderr)
	require.Equal(t, exitError, code)
	msg := stderr.String()
	for _, want := range []string{
		"--node-id is required (from default)",
		"--snapshots-per-collection 200000 must be between 1 and 100000 (from " + path + ":1)",
		"--restore-retention 1s must be at least 1m (from env SNAPKEEP_RESTORE_RETENTION)",
		"--gc-grace -1s cannot be negative (from " + path + ":2)",
	} {
		require.Contains(t, msg, want)
	}
}

// TestConfigMultipartCopyFlags: the restore's multipart-copy threshold and part size
// are server options (flag, env, file) that reach the node and are checked at start.
func TestConfigMultipartCopyFlags(t *testing.T) {
	cmd, src, err := loadServerConfig(t, map[string]string{"SNAPKEEP_RESTORE_PART_SIZE": "16777216"}, "--restore-multipart-threshold", "67108864")
	require.NoError(t, err)
	require.Equal(t, "67108864", flagValue(t, cmd, "restore-multipart-threshold"))
	require.Equal(t, "16777216", flagValue(t, cmd, "restore-part-size"))
	require.Equal(t, "env SNAPKEEP_RESTORE_PART_SIZE", src["restore-part-size"])

	t.Setenv("SNAPKEEP_RESTORE_PART_SIZE", "1024")
	var stderr bytes.Buffer
	code := execute(context.Background(), newRootCmd(), []string{"server", "--node-id", "n1", "--data-dir", t.TempDir(),
		"--peers", "n1=127.0.0.1:7011", "--restore-multipart-threshold", "6442450944"}, &stderr)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr.String(), "--restore-multipart-threshold 6442450944 (the multipart copy threshold) must be between 5 MiB (5242880) and 5 GiB (5368709120) bytes (from flag --restore-multipart-threshold)")
	require.Contains(t, stderr.String(), "--restore-part-size 1024 (the multipart copy part size) must be between 5 MiB (5242880) and 5 GiB (5368709120) bytes (from env SNAPKEEP_RESTORE_PART_SIZE)")
}

// TestConfigRaftTimeouts: the Raft timeouts are server options with LAN defaults; a
// WAN profile raises them together, and a heartbeat timeout raised alone is refused at
// start, naming the election timeout left at its default.
func TestConfigRaftTimeouts(t *testing.T) {
	cmd, _, err := loadServerConfig(t, nil)
	require.NoError(t, err)
	for _, name := range []string{"raft-heartbeat-timeout", "raft-election-timeout", "raft-leader-lease-timeout"} {
		require.Equal(t, "300ms", flagValue(t, cmd, name))
	}
	path := writeConfig(t, "raft-heartbeat-timeout: 1s\nraft-election-timeout: 1s\n")
	cmd, src, err := loadServerConfig(t, map[string]string{"SNAPKEEP_RAFT_LEADER_LEASE_TIMEOUT": "500ms"}, "--config", path)
	require.NoError(t, err)
	require.Equal(t, "1s", flagValue(t, cmd, "raft-heartbeat-timeout"))
	require.Equal(t, "1s", flagValue(t, cmd, "raft-election-timeout"))
	require.Equal(t, "500ms", flagValue(t, cmd, "raft-leader-lease-timeout"))
	require.Equal(t, "env SNAPKEEP_RAFT_LEADER_LEASE_TIMEOUT", src["raft-leader-lease-timeout"])

	var stderr bytes.Buffer
	code := execute(context.Background(), newRootCmd(), []string{"server", "--node-id", "n1", "--data-dir", t.TempDir(),
		"--peers", "n1=127.0.0.1:7011", "--raft-heartbeat-timeout", "1s"}, &stderr)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr.String(), "--raft-election-timeout 300ms must be at least --raft-heartbeat-timeout 1s (raise both together, e.g. for a WAN) (from default)")
	stderr.Reset()
	code = execute(context.Background(), newRootCmd(), []string{"server", "--node-id", "n1", "--data-dir", t.TempDir(),
		"--peers", "n1=127.0.0.1:7011", "--raft-leader-lease-timeout", "400ms"}, &stderr)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr.String(), "--raft-leader-lease-timeout 400ms must be at most --raft-heartbeat-timeout 300ms (from flag --raft-leader-lease-timeout)")
}

// TestPrintConfig prints the effective configuration as YAML with sources, secrets
// masked, without starting a node.
func TestPrintConfig(t *testing.T) {
	path := writeConfig(t, "node-id: n7\ns3-secret-key: hunter2\n")
	t.Setenv("SNAPKEEP_GC_INTERVAL", "3m")
	var stdout, stderr bytes.Buffer
	root := newRootCmd()
	root.SetOut(&stdout)
	code := execute(context.Background(), root, []string{"server", "--config", path, "--print-config", "--grpc-addr", "127.0.0.1:9"}, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	out := stdout.String()
	require.NotContains(t, out, "hunter2")
	require.Contains(t, out, `s3-secret-key: "********" # `+path+":2")
	require.Contains(t, out, `node-id: "n7" # `+path+":1")
	require.Contains(t, out, `gc-interval: "3m0s" # env SNAPKEEP_GC_INTERVAL`)
	require.Contains(t, out, `grpc-addr: "127.0.0.1:9" # flag --grpc-addr`)
	require.Contains(t, out, `backup-retain: 7 # default`)
	require.Contains(t, out, `gc-disabled: false # default`)
	// The output is itself a valid configuration file.
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(stdout.Bytes(), &m))
	again := writeConfig(t, strings.ReplaceAll(out, `"********"`, `""`))
	_, _, err := loadServerConfig(t, nil, "--config", again)
	require.NoError(t, err)
}

// TestConfigDocUpToDate fails when docs/CONFIG.md does not match the server's flags.
// Regenerate with: go run ./cmd/snapkeep server config-doc > docs/CONFIG.md
func TestConfigDocUpToDate(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, writeConfigDoc(&buf, newServerCmd().LocalFlags()))
	path := filepath.Join("..", "..", "docs", "CONFIG.md")
	if os.Getenv("SNAPKEEP_UPDATE_CONFIG_DOC") != "" {
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	have, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, buf.String(), string(have), "docs/CONFIG.md is out of date: run `%s`", configDocCommand)
	// Every option is listed.
	newServerCmd().LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			require.Contains(t, string(have), "| `"+f.Name+"` |")
		}
	})

	// The hidden command prints the same.
	var stdout, stderr bytes.Buffer
	root := newRootCmd()
	root.SetOut(&stdout)
	require.Equal(t, exitOK, execute(context.Background(), root, []string{"server", "config-doc"}, &stderr), stderr.String())
	require.Equal(t, buf.String(), stdout.String())
}
