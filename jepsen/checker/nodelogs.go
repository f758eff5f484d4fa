package checker

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The nodes' own logs, <run>/logs/<node>.log: every process of the node, in slog's
// text format, appended to across restarts.

// scanNodeLog calls fn with every line of node id's log in the run directory outDir and
// returns how many there were. A missing log is an error matching fs.ErrNotExist.
func scanNodeLog(outDir, id string, fn func(line string)) (int, error) {
	path := filepath.Join(outDir, "logs", id+".log")
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	lines := 0
	for sc.Scan() {
		lines++
		fn(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return lines, fmt.Errorf("read %s: %w", path, err)
	}
	return lines, nil
}

// logString is the string attribute key=V or key="V" of a text-format slog line ("" when
// absent).
func logString(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if q, err := strconv.QuotedPrefix(v); err == nil {
			if u, err := strconv.Unquote(q); err == nil {
				return u
			}
		}
		return ""
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// logAttr is the unsigned integer attribute key=N of a text-format slog line (0 when
// absent or not a number).
func logAttr(line, key string) uint64 {
	n, err := strconv.ParseUint(logString(line, key), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
