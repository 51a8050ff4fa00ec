// Package adversarial holds sandlock's adversarial suite, in its tests:
// escape attempts (each run by the attacker helper program inside a real
// sandbox, in both supervised and --no-supervisor mode, with a bare control
// run that proves the attempt works when nothing stops it), faults
// (sandlock or its target killed at the worst moment, the listener gone
// early, signal storms) and load (a hundred sandboxes at once).
//
// SECURITY.md lists every attempt and the mechanism that stops it.
package adversarial
