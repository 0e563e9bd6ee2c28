// Command parkctl is the command line of parkgate for drivers and
// operators: it reserves, pays, parks and leaves, and lets operators force
// spot statuses, push reservations from a CSV file and read the change
// log, all through centrald's HTTP API (package central/client). Run
// "parkctl help" for the commands.
//
// The logic lives in commands.go, behind run, so that tests drive it
// in-process against the real handler.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }
