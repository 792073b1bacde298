package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxProfileSize bounds a profile file; Docker's default is about 17 KiB.
const MaxProfileSize = 1 << 20

// Load reads and validates the profile at path. Errors name the file and,
// for JSON errors, the line and column.
func Load(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seccomp: load profile: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxProfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("seccomp: load profile %s: read: %w", path, err)
	}
	if len(data) > MaxProfileSize {
		return nil, fmt.Errorf("seccomp: load profile %s: larger than %d bytes", path, MaxProfileSize)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("seccomp: load profile %s: %w", path, err)
	}
	return p, nil
}

// Parse decodes and validates a profile. Unknown JSON keys are errors, so
// a misspelt key does not silently drop a rule.
func Parse(data []byte) (*Profile, error) {
	if len(data) > MaxProfileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxProfileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, jsonError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: data after the profile object", position(data, dec.InputOffset()))
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// jsonError adds the line and column to encoding/json's errors.
func jsonError(data []byte, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("empty file")
	case errors.As(err, &syntax):
		return fmt.Errorf("%s: invalid JSON: %w", position(data, syntax.Offset-1), err)
	case errors.As(err, &typ):
		return fmt.Errorf("%s: %s: want %s, got JSON %s", position(data, typ.Offset-1), typ.Field, typ.Type, typ.Value)
	}
	return fmt.Errorf("invalid profile: %w", err)
}

// position turns the offset of a byte into "line L, column C".
func position(data []byte, offset int64) string {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}
