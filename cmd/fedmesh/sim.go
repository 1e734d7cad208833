package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/sim"
)

func newSimCmd() *cobra.Command {
	var (
		cfg      sim.Config
		profile  string
		output   string
		cpLogs   bool
		dataDir  string
		progress bool
		cpuProf  string
		memProf  string
		restProf string
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "simulate a federation of N control planes on loopback and measure it",
		Long: `sim starts N real control planes (embedded etcd with mTLS and auth, serf gossip,
replication, merge, fencing and xDS planning) on one loopback /16, with
synthetic sources of S services each, and measures: membership convergence,
catalog sync, propagation of endpoint changes to every other cluster,
fencing of a killed cluster, CPU, memory, gossip and catalog bandwidth per
control plane. Progress goes to stderr, the result to stdout.`,
		Example: `  fedmesh sim --clusters 10 --services 100
  fedmesh sim --clusters 200 --services 100 --workers 8 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" && output != "yaml" {
				return &exitError{code: 2, err: fmt.Errorf("unknown output format %q: want json or yaml", output)}
			}
			cfg.Profile = membership.Profile(profile)
			cfg.DataDir = dataDir
			if progress {
				cfg.Progress = cmd.ErrOrStderr()
			}
			if cpLogs {
				log, err := commandLogger(cmd)
				if err != nil {
					return err
				}
				cfg.Logger = log
			}
			if cfg.Workers != 1 {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				cfg.WorkerCommand = []string{exe, "sim", "worker"}
				if cpLogs {
					cfg.WorkerCommand = append(cfg.WorkerCommand, "--control-plane-logs")
				}
			}
			if cpuProf != "" {
				stop, err := startCPUProfile(cpuProf)
				if err != nil {
					return err
				}
				defer stop()
			}
			if restProf != "" {
				cfg.AtRest = func() func() {
					stop, err := startCPUProfile(restProf)
					if err != nil {
						fmt.Fprintln(cmd.ErrOrStderr(), "rest CPU profile:", err)
						return func() {}
					}
					return stop
				}
			}
			if memProf != "" {
				cfg.AfterChurn = func() {
					if err := writeHeapProfile(memProf); err != nil {
						fmt.Fprintln(cmd.ErrOrStderr(), "heap profile:", err)
					}
				}
			}
			res, err := sim.Run(cmd.Context(), cfg)
			if res != nil {
				if perr := printOutput(cmd.OutOrStdout(), output, res, res.WriteText); perr != nil {
					return perr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Clusters, "clusters", 10, "control planes to run")
	f.IntVar(&cfg.Services, "services", sim.DefaultServices, "services every cluster exports")
	f.Float64Var(&cfg.Consume, "consume", 0, "share of the services each cluster consumes and imports (scoped imports), 0 to 1; 0: every service")
	f.IntVar(&cfg.Endpoints, "endpoints", sim.DefaultEndpoints, "endpoints per service in every cluster")
	f.Float64Var(&cfg.ChurnRate, "churn-rate", sim.DefaultChurnRate, "endpoint changes per second across the federation during the churn")
	f.IntVar(&cfg.Changes, "changes", sim.DefaultChanges, "endpoint changes to make and follow")
	f.StringVar(&profile, "gossip-profile", string(membership.ProfileWAN), "gossip timings: wan, lan or local")
	f.DurationVar(&cfg.FencePeriod, "fence-period", sim.DefaultFencePeriod, "how long a peer's catalog may be unreachable before it is fenced")
	f.DurationVar(&cfg.IdleWindow, "rest", sim.DefaultIdleWindow, "how long the synced federation is measured at rest")
	f.DurationVar(&cfg.PhaseTimeout, "phase-timeout", sim.DefaultPhaseTimeout, "bound on every phase")
	f.IntVar(&cfg.StartParallel, "start-parallel", sim.DefaultStartParallel, "control planes a process starts at once")
	f.Float64Var(&cfg.TimeoutScale, "timeout-scale", 0, "stretch the control planes' proof, catalog dial and keepalive, etcd write and lease timeouts by this factor, 1 to 100 (0: clusters / (10 x CPUs), at least 1): on one machine each control plane gets a sliver of a CPU")
	f.IntVar(&cfg.JoinWave, "join-wave", 0, "join the clusters in waves of this many, each once the ones before formed, as a federation grows (0: all at once); convergence and sync are then the last wave's")
	f.IntVar(&cfg.Workers, "workers", 0, "processes to spread the control planes over; 0: as few as the open-files limit allows (one process holds both ends of its clusters' catalog connections)")
	f.Int64Var(&cfg.Seed, "seed", 1, "seed of the churn's choice of changes")
	f.StringVar(&dataDir, "data-dir", "", "directory for the run's CA, etcd data and serf state, removed at the end (default: a new temporary directory)")
	f.BoolVar(&progress, "progress", true, "print progress to stderr")
	f.BoolVar(&cpLogs, "control-plane-logs", false, "log the control planes (--log-level) to stderr")
	f.StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a table)")
	f.StringVar(&cpuProf, "cpu-profile", "", "write this process's CPU profile (the control planes' with --workers 1) to this file")
	f.StringVar(&restProf, "rest-cpu-profile", "", "write this process's CPU profile of the rest window only (the idle federation's, with --workers 1) to this file")
	f.StringVar(&memProf, "mem-profile", "", "write this process's heap profile after the churn (the control planes' with --workers 1) to this file")
	cmd.AddCommand(newSimWorkerCmd())
	return cmd
}

// startCPUProfile profiles this process's CPU into path until stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// writeHeapProfile writes this process's heap profile to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// newSimWorkerCmd is the process `fedmesh sim --workers N` starts N of.
func newSimWorkerCmd() *cobra.Command {
	var cpLogs bool
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "run a share of a simulated federation (started by fedmesh sim)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.DiscardHandler)
			if cpLogs {
				l, err := commandLogger(cmd)
				if err != nil {
					return err
				}
				log = l
			}
			return sim.RunWorker(cmd.Context(), os.Stdin, os.Stdout, log)
		},
	}
	cmd.Flags().BoolVar(&cpLogs, "control-plane-logs", false, "log the control planes to stderr")
	return cmd
}
