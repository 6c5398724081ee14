# remedy on every Nomad client node: a system job, raw_exec because remedy
# acts on the node itself (its files, processes and namespaces), bound to
# loopback so only the node's local Alertmanager path reaches it.
job "remedy" {
  type        = "system"
  datacenters = ["*"]

  group "remedy" {
    restart {
      attempts = 10
      interval = "10m"
      delay    = "15s"
      mode     = "delay"
    }

    task "remedy" {
      driver = "raw_exec"

      config {
        command = "/usr/local/bin/remedy"
        args    = ["serve", "--config", "${NOMAD_TASK_DIR}/remedy.toml", "--log-format", "json"]
      }

      # SIGTERM, then shutdown_grace for executing runs, before Nomad kills it.
      kill_signal  = "SIGTERM"
      kill_timeout = "45s"

      template {
        destination = "local/remedy.toml"
        data        = <<-EOT
          state_dir = "/var/lib/remedy"

          [server]
          listen = "127.0.0.1:9095"
          token_file = "/etc/remedy/token"

          [[plugin]]
          name = "disk-cleanup"
          source = "builtin:disk-cleanup"
          [plugin.grants]
          fs_read = ["/orchestrator", "/var/lib/nomad"]
          fs_remove = ["/orchestrator/sandbox", "/orchestrator/template", "/var/lib/nomad/alloc"]
          proc = ["read"]
          nomad = ["read", "gc"]
          docker = ["read", "prune"]

          [nomad]
          address = "http://{{ env "attr.unique.network.ip-address" }}:4646"

          [[route]]
          name = "disk-space"
          matchers = ['alertname=~"DiskSpace(Low|Critical)"', 'instance=~"{{ env "attr.unique.hostname" }}(:[0-9]+)?"']
          plugin = "disk-cleanup"
          mode = "dry-run"
          cooldown = "15m"
          group_by = ["instance", "mountpoint"]
        EOT
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
