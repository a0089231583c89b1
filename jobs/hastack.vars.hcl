# Values shared by every hastack job: pass with -var-file=jobs/hastack.vars.hcl.
# bin_dir (where the hastack binaries are) is set by scripts/up.sh with -var.
datacenters = ["dc1"]
