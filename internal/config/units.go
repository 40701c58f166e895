package config

import "github.com/faultline/faultline/internal/units"

// ByteSize is a size in bytes that reads "512MiB", "10GB" or a plain number.
type ByteSize = units.ByteSize

// ParseByteSize parses a size with an optional unit.
func ParseByteSize(s string) (ByteSize, error) { return units.ParseByteSize(s) }
