# Values shared by every hastack job: pass with -var-file=jobs/hastack.vars.hcl.
# bin_dir (where the hastack binaries are) is set by scripts/up.sh with -var.
datacenters = ["dc1"]

# How long Nomad waits before it starts a crashed task again, in every job
# (plus up to a quarter of jitter). Nginx is the one entry point, so this is
# what its clients wait after a crash: at 100 req/s, 1s cost 117-140 refused
# connections per crash, 200ms 35-38 (README, Drills). A task that keeps
# crashing is tried 30 times, then again once the minute is over. Nomad gives
# a new restart policy to new allocations only: after changing it, replace
# them (nomad alloc stop).
restart_delay = "200ms"
