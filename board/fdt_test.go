package board

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// fdtNode is one node of a flattened device tree: its properties by name.
type fdtNode map[string][]byte

// parseFDT reads a flattened device tree blob (a .dtb) into its nodes by
// path ("/", "/soc/serial@7e215040"), as the kernel shows them under
// /proc/device-tree.
func parseFDT(dtb []byte) (map[string]fdtNode, error) {
	be := binary.BigEndian
	if len(dtb) < 40 || be.Uint32(dtb) != 0xd00dfeed {
		return nil, errors.New("not a flattened device tree")
	}
	total, offStruct, offStrings := be.Uint32(dtb[4:]), be.Uint32(dtb[8:]), be.Uint32(dtb[12:])
	if int(total) > len(dtb) || offStruct >= total || offStrings >= total {
		return nil, fmt.Errorf("blob of %d bytes, header says %d", len(dtb), total)
	}
	dtb = dtb[:total]
	str := func(off uint32) (string, error) {
		if int(offStrings)+int(off) >= len(dtb) {
			return "", errors.New("property name past the end")
		}
		b := dtb[offStrings+off:]
		end := bytes.IndexByte(b, 0)
		if end < 0 {
			return "", errors.New("unterminated property name")
		}
		return string(b[:end]), nil
	}
	nodes := map[string]fdtNode{}
	var path []string
	for p := int(offStruct); p+4 <= len(dtb); {
		tok := be.Uint32(dtb[p:])
		p += 4
		switch tok {
		case 1: // FDT_BEGIN_NODE: a NUL-terminated name, padded to 4
			end := bytes.IndexByte(dtb[p:], 0)
			if end < 0 {
				return nil, errors.New("unterminated node name")
			}
			path = append(path, string(dtb[p:p+end]))
			nodes[nodePath(path)] = fdtNode{}
			p += (end + 4) &^ 3
		case 2: // FDT_END_NODE
			if len(path) == 0 {
				return nil, errors.New("unbalanced end of node")
			}
			path = path[:len(path)-1]
		case 3: // FDT_PROP: length, name offset, value padded to 4
			if p+8 > len(dtb) || len(path) == 0 {
				return nil, errors.New("truncated property")
			}
			n, nameOff := int(be.Uint32(dtb[p:])), be.Uint32(dtb[p+4:])
			name, err := str(nameOff)
			if err != nil {
				return nil, err
			}
			if p+8+n > len(dtb) {
				return nil, errors.New("property past the end")
			}
			nodes[nodePath(path)][name] = dtb[p+8 : p+8+n]
			p += 8 + (n+3)&^3
		case 4: // FDT_NOP
		case 9: // FDT_END
			return nodes, nil
		default:
			return nil, fmt.Errorf("unknown token %#x at %d", tok, p-4)
		}
	}
	return nil, errors.New("no end token")
}

func nodePath(parts []string) string {
	return "/" + strings.Join(parts[1:], "/")
}

// writeProcDeviceTree writes nodes as the kernel's /proc/device-tree
// under root: a directory per node, a file per property.
func writeProcDeviceTree(root string, nodes map[string]fdtNode) error {
	for path, props := range nodes {
		dir := filepath.Join(root, "proc/device-tree", path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for name, value := range props {
			if err := os.WriteFile(filepath.Join(dir, name), value, 0o444); err != nil {
				return err
			}
		}
	}
	return nil
}

// cString is a device-tree string property without its trailing NUL.
func cString(b []byte) string { return strings.TrimRight(string(b), "\x00") }

// stdoutTTY names the tty Linux gives the UART the device tree's
// /chosen/stdout-path points to: the 8250 and PL011 drivers number a port
// by its serialN alias, so the mini UART at serial1 is ttyS1 and a PL011
// at serial0 is ttyAMA0.
func stdoutTTY(nodes map[string]fdtNode) (string, error) {
	alias, _, _ := strings.Cut(cString(nodes["/chosen"]["stdout-path"]), ":")
	idx, ok := strings.CutPrefix(alias, "serial")
	if !ok {
		return "", fmt.Errorf("stdout-path %q is not a serial alias", alias)
	}
	uart := nodes[cString(nodes["/aliases"][alias])]
	compatible := strings.Split(cString(uart["compatible"]), "\x00")
	switch {
	case len(compatible) > 0 && compatible[0] == "brcm,bcm2835-aux-uart":
		return "ttyS" + idx, nil
	case len(compatible) > 0 && compatible[0] == "arm,pl011":
		return "ttyAMA" + idx, nil
	}
	return "", fmt.Errorf("%s is a %q: no tty naming known", alias, compatible)
}
