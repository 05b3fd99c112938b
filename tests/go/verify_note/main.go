// Command verify_note checks a C2SP signed note with Go's
// golang.org/x/mod/sumdb/note, an implementation outside this project:
//
//	verify_note VERIFIER_KEY NOTE_FILE
//
// It prints the note's text and exits 0 when the key signed it, and exits 1
// with the reason otherwise. The integration suite runs it on decision
// statements (tests/api/statements.rs) with GO111MODULE=off and Debian's
// GOPATH (/usr/share/gocode, package golang-golang-x-mod-dev).
package main

import (
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: verify_note VERIFIER_KEY NOTE_FILE")
		os.Exit(2)
	}
	verifier, err := note.NewVerifier(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifier key:", err)
		os.Exit(2)
	}
	msg, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fmt.Println("not verified:", err)
		os.Exit(1)
	}
	fmt.Print(n.Text)
}
