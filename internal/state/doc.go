// Package state owns Vigil's live security state: the durable journal of
// signals and the immutable snapshot materialised from it that every
// decision reads.
package state
