package memlimit

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func parseBytes(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

func TestChoose(t *testing.T) {
	container := func(limit int64, ok bool, err error) func() (int64, bool, error) {
		return func() (int64, bool, error) { return limit, ok, err }
	}
	for _, tc := range []struct {
		name, value, env string
		container        func() (int64, bool, error)
		want             int64
		wantErr          bool
	}{
		{"auto keeps GOMEMLIMIT", "auto", "900MiB", container(1<<30, true, nil), 0, false},
		{"auto takes the container's limit", "auto", "", container(1000, true, nil), 900, false},
		{"empty is auto", "", "", container(2000, true, nil), 1800, false},
		{"auto without a container limit sets none", "auto", "", container(0, false, nil), 0, false},
		{"auto when the cgroup cannot be read sets none", "auto", "", container(0, false, errors.New("boom")), 0, false},
		{"none overrides GOMEMLIMIT", "none", "900MiB", container(1000, true, nil), math.MaxInt64, false},
		{"a size", "12345", "900MiB", container(1000, true, nil), 12345, false},
		{"a bad size", "twelve", "", container(1000, true, nil), 0, true},
		{"zero", "0", "", container(1000, true, nil), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Choose(tc.value, tc.env, tc.container, parseBytes)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got.Bytes, got.Reason)
			require.NotEmpty(t, got.Reason)
		})
	}
}

func TestCgroupLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		want   int64
		wantOK bool
	}{
		{"v2 with a limit", map[string]string{"proc/self/cgroup": "0::/kubepods/pod1\n", "sys/fs/cgroup/kubepods/pod1/memory.max": "1073741824\n"}, 1 << 30, true},
		{"v2 without a limit", map[string]string{"proc/self/cgroup": "0::/user.slice\n", "sys/fs/cgroup/user.slice/memory.max": "max\n"}, 0, false},
		{"v1 with a limit, cgroup namespace", map[string]string{"proc/self/cgroup": "4:memory:/\n", "sys/fs/cgroup/memory/memory.limit_in_bytes": "536870912\n"}, 512 << 20, true},
		{"v1 with a limit, the process's own cgroup", map[string]string{"proc/self/cgroup": "5:devices:/\n4:memory:/docker/abc\n0::/\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "536870912\n", "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 512 << 20, true},
		{"v1 without a limit", map[string]string{"proc/self/cgroup": "4:memory:/\n", "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		{"no cgroup at all", map[string]string{}, 0, false},
		{"v2 path without the controller file falls back to v1", map[string]string{"proc/self/cgroup": "0::/x\n", "sys/fs/cgroup/memory/memory.limit_in_bytes": "4096\n"}, 4096, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for path, content := range tc.files {
				require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(root, path), []byte(content), 0o644))
			}
			got, ok, err := CgroupLimit(root)
			require.NoError(t, err)
			require.Equal(t, tc.wantOK, ok)
			require.Equal(t, tc.want, got)
		})
	}
	t.Run("garbage in memory.max is an error", func(t *testing.T) {
		root := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(root, "proc/self"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, "proc/self/cgroup"), []byte("0::/a\n"), 0o644))
		require.NoError(t, os.MkdirAll(filepath.Join(root, "sys/fs/cgroup/a"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, "sys/fs/cgroup/a/memory.max"), []byte("lots\n"), 0o644))
		_, _, err := CgroupLimit(root)
		require.ErrorContains(t, err, "not a number")
	})
}
