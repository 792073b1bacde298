// Package pcln reads a Go binary's function table from its pclntab,
// which a stripped binary keeps: the benchmarks name the functions of
// berth's binary with it (bench/boot's profile, bench/mem's text part).
package pcln

import (
	"debug/elf"
	"debug/gosym"
	"fmt"
)

// Binary is what a benchmark needs of a Go binary's code.
type Binary struct {
	Table *gosym.Table // functions, files and lines
	Text  [2]uint64    // the .text section's first and end address
	Code  []byte       // the .text section's bytes
}

// Open reads the .text and .gopclntab sections of the ELF binary at path.
func Open(path string) (*Binary, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	text, tab := f.Section(".text"), f.Section(".gopclntab")
	if text == nil || tab == nil {
		return nil, fmt.Errorf("%s: no .text or .gopclntab", path)
	}
	data, err := tab.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: .gopclntab: %w", path, err)
	}
	code, err := text.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: .text: %w", path, err)
	}
	t, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, fmt.Errorf("%s: function table: %w", path, err)
	}
	return &Binary{Table: t, Text: [2]uint64{text.Addr, text.Addr + text.Size}, Code: code}, nil
}
