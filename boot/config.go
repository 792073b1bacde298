package boot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"berth/container"
)

// DefaultConfig is where PID 1 looks for its config when the kernel
// command line has no berth.config=PATH.
const DefaultConfig = "/etc/berth.toml"

// maxConfigSize bounds the config file berth reads.
const maxConfigSize = 1 << 20

// Config is the appliance definition: one TOML file.
//
// New keys are added as optional fields whose zero value keeps today's
// behaviour, so a file that is valid now stays valid and means the same.
type Config struct {
	// Hostname is the appliance's hostname (default: "berth").
	Hostname  string            `toml:"hostname"`
	Container []ContainerConfig `toml:"container"`
	Board     BoardConfig       `toml:"board"`
	Images    ImagesConfig      `toml:"images"`

	// path is the file the config was read from; relative image paths
	// are resolved against its directory.
	path string
}

// ConfigError is one problem in a config file, located by line and key.
type ConfigError struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Key == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Key + ": " + e.Msg
}

// LoadConfig reads and validates the config at path. Every problem found is
// returned, joined, each as a *ConfigError naming file, line and key.
func LoadConfig(path string) (*Config, error) {
	data, err := readLimited(path, maxConfigSize)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: err.Error()}
	}
	return ParseConfig(path, data)
}

// ParseConfig parses and validates config data read from path.
func ParseConfig(path string, data []byte) (*Config, error) {
	// 1. Syntax, then every value's type, all reported at once.
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		return nil, decodeError(path, err)
	}
	pos := newKeyPositions(string(data), md)
	if errs := typeErrors(path, doc, pos); len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	// 2. The typed decode, which now cannot fail on a type.
	cfg := &Config{path: path}
	if md, err = toml.Decode(string(data), cfg); err != nil {
		return nil, decodeError(path, err)
	}
	v := &validator{file: path, pos: pos}
	for _, k := range md.Undecoded() {
		v.addKey(v.pos.indexedUndecoded(k), "unknown key")
	}
	cfg.validate(v)
	if len(v.errs) > 0 {
		return nil, joinSorted(v.errs)
	}
	return cfg, nil
}

// joinSorted joins ConfigErrors in line order.
func joinSorted(errs []error) error {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].(*ConfigError).Line < errs[j].(*ConfigError).Line })
	return errors.Join(errs...)
}

// decodeError locates a TOML syntax or type error. BurntSushi/toml reports
// syntax errors as ParseError and type mismatches as "line N (last key
// K): ..." messages.
func decodeError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &ConfigError{File: path, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
	}
	if m := typeErrRE().FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ConfigError{File: path, Line: line, Key: m[2], Msg: m[3]}
	}
	return &ConfigError{File: path, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

var typeErrRE = lazyRegexp(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// validator collects located errors.
type validator struct {
	file string
	pos  *keyPositions
	errs []error
}

// add records an error for the indexed key path (see keyPositions).
func (v *validator) addKey(indexed string, format string, args ...any) {
	v.errs = append(v.errs, &ConfigError{
		File: v.file, Line: v.pos.line(indexed), Key: plainKey(indexed), Msg: fmt.Sprintf(format, args...),
	})
}

func (cfg *Config) validate(v *validator) {
	if cfg.Hostname != "" {
		if err := container.CheckHostname(cfg.Hostname); err != nil {
			v.addKey("hostname", "%v", err)
		}
	}
	seen := map[string]bool{}
	for i, c := range cfg.Container {
		prefix := "container#" + strconv.Itoa(i) + "."
		if c.Name != "" && seen[c.Name] {
			v.addKey(prefix+"name", "duplicate container name %s", container.Quote(c.Name))
		}
		seen[c.Name] = true
		if c.Image == "" {
			v.addKey(prefix+"image", "missing image: want the path of an image file")
		}
		_, errs := c.toSpec("/")
		c.supervision(func(k, format string, args ...any) {
			errs = append(errs, fieldError{k, fmt.Sprintf(format, args...)})
		})
		for _, e := range errs {
			v.addKey(prefix+e.key, "%s", e.msg)
		}
	}
	cfg.checkOrder(v)
	cfg.Board.check(v)
	cfg.checkImageKeys(v)
}

// ImagePath returns the container's image path, resolved against the
// config file's directory when it is relative.
func (cfg *Config) ImagePath(c ContainerConfig) string { return cfg.resolve(c.Image) }

// readLimited reads path, failing when it holds more than limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file is larger than the %d bytes a config may have", limit)
	}
	return data, nil
}
