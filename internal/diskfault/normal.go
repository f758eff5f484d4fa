//go:build !faultinject

package diskfault

// Check returns the error to fail a write to where with, after the delay to slow it
// by; never anything in a normal build.
func Check(where string) error { return nil }
