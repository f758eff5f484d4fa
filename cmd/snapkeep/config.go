package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/snapkeep/snapkeep/server"
)

// Configuration of `snapkeep server` from three sources besides the command line,
// generic over the command's flag set, so a flag added later gets them for free:
//
//   - a YAML file (--config FILE or env SNAPKEEP_CONFIG): key = flag name; a list for
//     a repeatable flag; a map, for a flag that takes k=v,..., is joined into that form;
//   - the environment: SNAPKEEP_ + the flag name upper-cased with '-' → '_'.
//
// Precedence: command line > environment > file > default. Only flags not given on the
// command line (Flag.Changed) are filled in.

const (
	configEnv       = "SNAPKEEP_CONFIG"
	configFlag      = "config"
	printConfigFlag = "print-config"
	envPrefix       = "SNAPKEEP_"
)

// configDocCommand is the command that regenerates docs/CONFIG.md.
const configDocCommand = "go run ./cmd/snapkeep server config-doc > docs/CONFIG.md"

// flagSource records where each flag's effective value came from.
type flagSources map[string]string

// addConfigFlags adds --config and --print-config to the server command, loads the file
// and the environment before it runs (PreRunE), and prints the effective configuration
// instead of running when --print-config is given. It also adds the hidden config-doc
// subcommand. Call it once, after the command's RunE is set.
func addConfigFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.String(configFlag, "", "YAML configuration file: keys are flag names (env "+configEnv+"); flags win over env, env over the file")
	fl.Bool(printConfigFlag, false, "print the effective configuration as YAML (secrets masked) and exit")
	sources := flagSources{}
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		return loadConfig(cmd.LocalFlags(), os.LookupEnv, sources)
	}
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if print, _ := cmd.Flags().GetBool(printConfigFlag); print {
			return printConfig(cmd.OutOrStdout(), cmd.LocalFlags(), sources)
		}
		err := run(cmd, args)
		return annotateConfigError(err, sources)
	}
	cmd.AddCommand(&cobra.Command{
		Use:    "config-doc",
		Short:  "Print docs/CONFIG.md: every server option with its default",
		Hidden: true,
		Args:   exactArgs(),
		RunE: func(sub *cobra.Command, _ []string) error {
			return writeConfigDoc(sub.OutOrStdout(), cmd.LocalFlags())
		},
	})
}

// configurable reports whether a flag can be set from the file or the environment.
func configurable(f *pflag.Flag) bool {
	return f.Name != "help" && f.Name != configFlag && f.Name != printConfigFlag
}

// envName is the environment variable of a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// isList reports whether a flag is repeatable (a slice or array value).
func isList(f *pflag.Flag) bool {
	t := f.Value.Type()
	return strings.HasSuffix(t, "Slice") || strings.HasSuffix(t, "Array")
}

// expected describes the values a flag takes, for error messages.
func expected(f *pflag.Flag) string {
	switch t := f.Value.Type(); {
	case t == "duration":
		return "a duration such as 90s, 5m or 1h30m"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "uint"):
		return "a non-negative integer"
	case strings.HasPrefix(t, "int"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "stringToString":
		return "key=value pairs"
	case isList(f):
		return "a list of values"
	}
	return "a " + f.Value.Type()
}

// fileValue is one key of the configuration file.
type fileValue struct {
	values []string
	line   int
}

// loadConfig fills every flag not given on the command line from the environment or
// the configuration file, then checks the values it knows how to check. It reports
// every bad key and value at once.
func loadConfig(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), sources flagSources) error {
	var errs []error
	path := ""
	if f := fs.Lookup(configFlag); f != nil && f.Changed {
		path = f.Value.String()
	} else if v, ok := lookupEnv(configEnv); ok {
		path = v
	}
	var file map[string]fileValue
	if path != "" {
		var err error
		if file, err = readConfigFile(path, fs); err != nil {
			errs = append(errs, err)
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !configurable(f) {
			return
		}
		switch {
		case f.Changed:
			sources[f.Name] = "flag --" + f.Name
		case envSet(lookupEnv, f.Name):
			env := envName(f.Name)
			v, _ := lookupEnv(env)
			sources[f.Name] = "env " + env
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s=%q is not %s: %v", f.Name, env, v, expected(f), cleanParseError(err)))
			}
		case file[f.Name].line > 0:
			fv := file[f.Name]
			sources[f.Name] = fmt.Sprintf("%s:%d", path, fv.line)
			if isList(f) && len(fv.values) == 0 {
				// An empty list replaces the default.
				if sv, ok := f.Value.(pflag.SliceValue); ok {
					_ = sv.Replace(nil)
				}
			}
			for _, v := range fv.values {
				if err := f.Value.Set(v); err != nil {
					errs = append(errs, fmt.Errorf("%s: %q at %s:%d is not %s: %v", f.Name, v, path, fv.line, expected(f), cleanParseError(err)))
					break
				}
			}
		default:
			sources[f.Name] = "default"
		}
	})
	errs = append(errs, checkFlagValues(fs, sources)...)
	if len(errs) > 0 {
		return &usageError{err: fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))}
	}
	return nil
}

func envSet(lookupEnv func(string) (string, bool), flag string) bool {
	_, ok := lookupEnv(envName(flag))
	return ok
}

// cleanParseError strips strconv's noise ("strconv.ParseInt: parsing "x": ").
func cleanParseError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "parsing") {
		return msg[i+2:]
	}
	return msg
}

// readConfigFile reads the YAML file into flag values by key, checking every key names
// a flag and every value has a shape the flag takes.
func readConfigFile(path string, fs *pflag.FlagSet) (map[string]fileValue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config file %s: %v", path, err)
	}
	out := map[string]fileValue{}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return out, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s:%d: want a map of option names to values", path, root.Line)
	}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		at := fmt.Sprintf("%s:%d", path, k.Line)
		f := fs.Lookup(k.Value)
		if f != nil && (f.Name == configFlag || f.Name == printConfigFlag) {
			errs = append(errs, fmt.Errorf("%s: %q cannot be set in a config file", at, k.Value))
			continue
		}
		if f == nil || !configurable(f) {
			msg := fmt.Sprintf("%s: unknown key %q", at, k.Value)
			if s := suggestFlag(fs, k.Value); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			errs = append(errs, errors.New(msg+"; see docs/CONFIG.md"))
			continue
		}
		if _, dup := out[k.Value]; dup {
			errs = append(errs, fmt.Errorf("%s: key %q is given twice", at, k.Value))
			continue
		}
		fv := fileValue{line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				fv.values = []string{""}
			} else {
				fv.values = []string{v.Value}
			}
		case yaml.SequenceNode:
			if !isList(f) {
				errs = append(errs, fmt.Errorf("%s: %s takes one value (%s), not a list", at, k.Value, expected(f)))
				continue
			}
			fv.values = []string{}
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("%s:%d: %s: list items must be plain values", path, item.Line, k.Value))
					continue
				}
				fv.values = append(fv.values, item.Value)
			}
		case yaml.MappingNode:
			// Only for a flag that takes k=v,... (a string whose usage shows the form).
			if t := f.Value.Type(); t != "stringToString" && (t != "string" || !strings.Contains(f.Usage, "=")) {
				errs = append(errs, fmt.Errorf("%s: %s takes %s, not a map", at, k.Value, expected(f)))
				continue
			}
			var pairs []string
			for j := 0; j+1 < len(v.Content); j += 2 {
				mk, mv := v.Content[j], v.Content[j+1]
				if mv.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("%s:%d: %s: map values must be plain values", path, mv.Line, k.Value))
					continue
				}
				pairs = append(pairs, mk.Value+"="+mv.Value)
			}
			fv.values = []string{strings.Join(pairs, ",")}
		default:
			errs = append(errs, fmt.Errorf("%s: %s: unsupported value (%s)", at, k.Value, expected(f)))
			continue
		}
		out[k.Value] = fv
	}
	return out, errors.Join(errs...)
}

// suggestFlag returns the configurable flag name closest to name, if any is close.
func suggestFlag(fs *pflag.FlagSet, name string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *pflag.Flag) {
		if !configurable(f) {
			return
		}
		if d := levenshtein(name, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// checkFlagValues checks what can be checked from a flag's name alone: addresses
// (names ending in -addr or -advertise) are host:port, peers parse, log settings are
// known. server.Config.validate checks the rest at start.
func checkFlagValues(fs *pflag.FlagSet, sources flagSources) []error {
	var errs []error
	bad := func(f *pflag.Flag, want string) {
		errs = append(errs, fmt.Errorf("%s: %q (from %s) is not %s", f.Name, f.Value.String(), sources[f.Name], want))
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !configurable(f) || f.Value.Type() != "string" {
			return
		}
		v := f.Value.String()
		if v == "" {
			return // required settings are server.Config.validate's business
		}
		switch {
		case strings.HasSuffix(f.Name, "-addr") || strings.HasSuffix(f.Name, "-advertise"):
			if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
				bad(f, "a host:port address")
			}
		case f.Name == "peers":
			if _, err := server.ParsePeers(v); err != nil {
				bad(f, "ID=HOST:PORT,... ("+err.Error()+")")
			}
		case f.Name == "dial-via":
			if _, err := server.ParseDialVia(v); err != nil {
				bad(f, "FROM=TO,... with both host:port ("+err.Error()+")")
			}
		case f.Name == "log-level":
			if !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(v)) {
				bad(f, "debug, info, warn or error")
			}
		case f.Name == "log-format":
			if !slices.Contains([]string{"text", "json"}, strings.ToLower(v)) {
				bad(f, "text or json")
			}
		}
	})
	return errs
}

// annotateConfigError adds to each line of the server's "invalid configuration" error
// that starts with --FLAG where that flag's value came from.
func annotateConfigError(err error, sources flagSources) error {
	if err == nil || !strings.HasPrefix(err.Error(), "invalid configuration:") {
		return err
	}
	lines := strings.Split(err.Error(), "\n")
	for i, line := range lines {
		name, ok := strings.CutPrefix(line, "--")
		if !ok {
			continue
		}
		if j := strings.IndexAny(name, " :"); j >= 0 {
			name = name[:j]
		}
		if src, ok := sources[name]; ok {
			lines[i] = line + " (from " + src + ")"
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}

// secretFlag reports whether a flag's value must not be printed.
func secretFlag(name string) bool {
	for _, s := range []string{"secret", "password", "token", "private"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// flagYAMLValue is a flag's value as YAML: a list for repeatable flags, a plain scalar
// otherwise.
func flagYAMLValue(f *pflag.Flag) any {
	if sv, ok := f.Value.(pflag.SliceValue); ok && isList(f) {
		return sv.GetSlice()
	}
	return f.Value.String()
}

// printConfig writes the effective configuration as YAML, each key commented with its
// source; secrets are masked.
func printConfig(w io.Writer, fs *pflag.FlagSet, sources flagSources) error {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if configurable(f) {
			names = append(names, f.Name)
		}
	})
	slices.Sort(names)
	var buf bytes.Buffer
	for _, name := range names {
		f := fs.Lookup(name)
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: name, LineComment: sources[name]}
		var val *yaml.Node
		switch t := f.Value.Type(); {
		case secretFlag(name) && f.Value.String() != "":
			val = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "********", Style: yaml.DoubleQuotedStyle}
		case isList(f):
			val = &yaml.Node{}
			if err := val.Encode(flagYAMLValue(f)); err != nil {
				return err
			}
		case t == "bool":
			val = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: f.Value.String()}
		case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
			val = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: f.Value.String()}
		case strings.HasPrefix(t, "float"):
			val = &yaml.Node{Kind: yaml.ScalarNode, Value: f.Value.String()} // plain: 5000 or 0.5
		default: // strings stay strings ("" and "on" included); durations too
			val = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.Value.String(), Style: yaml.DoubleQuotedStyle}
		}
		node := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{key, val}}
		out, err := yaml.Marshal(node)
		if err != nil {
			return err
		}
		buf.Write(out)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// writeConfigDoc writes docs/CONFIG.md from the flag set.
func writeConfigDoc(w io.Writer, fs *pflag.FlagSet) error {
	var b strings.Builder
	b.WriteString("# snapkeep server configuration\n\n")
	b.WriteString("<!-- Generated from the flags of `snapkeep server`; do not edit. Regenerate with:\n\n")
	b.WriteString("    " + configDocCommand + "\n\n")
	b.WriteString("TestConfigDocUpToDate fails when this file is out of date. -->\n\n")
	b.WriteString("Every option of `snapkeep server` can be given three ways besides its default:\n\n")
	b.WriteString("- in a YAML file named by `--config FILE` (or env `" + configEnv + "`): the key is the flag name,\n")
	b.WriteString("  e.g. `grpc-addr: 127.0.0.1:7001`; a repeatable option takes a list; an option taking\n")
	b.WriteString("  `k=v,...` (such as `peers`) also takes a map (`peers: {n1: 127.0.0.1:7011}`);\n")
	b.WriteString("- in the environment: `SNAPKEEP_` + the flag name in upper case with `-` → `_`,\n")
	b.WriteString("  e.g. `SNAPKEEP_GRPC_ADDR=127.0.0.1:7001`;\n")
	b.WriteString("- on the command line: `--grpc-addr 127.0.0.1:7001`.\n\n")
	b.WriteString("The command line wins over the environment, the environment over the file, the file\n")
	b.WriteString("over the default. Unknown keys in the file are an error (naming the key, file and\n")
	b.WriteString("line); every bad value is reported at start with where it came from.\n")
	b.WriteString("`snapkeep server --print-config` prints the effective configuration as YAML, each\n")
	b.WriteString("value commented with its source, secrets masked.\n\n")
	b.WriteString("| option | environment | type | default | description |\n")
	b.WriteString("|---|---|---|---|---|\n")
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !f.Hidden {
			names = append(names, f.Name)
		}
	})
	slices.Sort(names)
	for _, name := range names {
		f := fs.Lookup(name)
		env := "`" + envName(name) + "`"
		if !configurable(f) {
			env = "—"
			if name == configFlag {
				env = "`" + configEnv + "`"
			}
		}
		def := f.DefValue
		switch {
		case def == "" || def == "[]":
			def = "—"
		case secretFlag(name):
			def = "(set)"
		default:
			def = "`" + def + "`"
		}
		typ := f.Value.Type()
		if isList(f) {
			typ = "list (repeatable)"
		}
		usage := strings.ReplaceAll(f.Usage, "|", "\\|")
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", name, env, typ, def, usage)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
