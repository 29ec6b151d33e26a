//go:build !linux

package netjail
