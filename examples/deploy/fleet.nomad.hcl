# remedy on a Nomad fleet, sharing one PostgreSQL store:
#
# - job "remedy-receivers": two `remedy serve`, the targets of the
#   Alertmanager pair's webhooks (alertmanager-fleet.yml). They admit each
#   alert once, queue its run for the node it is about, and execute only
#   cluster-wide runs themselves.
# - job "remedy-agent": one `remedy agent` on every client node, raw_exec
#   because it acts on the node itself (its files, processes, namespaces,
#   modules). Its own config decides what may be touched on its node.
#
# The database password comes from Nomad variables; nothing secret is in the
# rendered config.

job "remedy-receivers" {
  type        = "service"
  datacenters = ["*"]

  group "receivers" {
    count = 2

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" { static = 9095 }
    }

    service {
      name     = "remedy"
      port     = "http"
      provider = "nomad"
      check {
        type     = "http"
        path     = "/-/ready"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "serve" {
      driver = "raw_exec"

      config {
        command = "/usr/local/bin/remedy"
        args    = ["serve", "--config", "${NOMAD_TASK_DIR}/remedy.toml", "--log-format", "json"]
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "45s"

      template {
        destination = "secrets/store-password"
        data        = "{{ with nomadVar \"nomad/jobs/remedy-receivers\" }}{{ .store_password }}{{ end }}"
      }

      template {
        destination = "local/remedy.toml"
        data        = <<-EOT
          state_dir = "/var/lib/remedy"

          [node]
          name = "{{ env "attr.unique.hostname" }}"

          [store]
          url = "postgres://remedy@db.internal:5432/remedy?sslmode=require"
          password_file = "{{ env "NOMAD_SECRETS_DIR" }}/store-password"

          [server]
          listen = "0.0.0.0:9095"
          token_file = "/etc/remedy/token"
          tls = { cert_file = "/etc/remedy/tls.crt", key_file = "/etc/remedy/tls.key" }

          # The receivers know every route, to admit and place its runs; the
          # agent on the alert's node executes them with its own config.
          [[plugin]]
          name = "disk-cleanup"
          source = "builtin:disk-cleanup"
          [plugin.grants]
          fs_read = ["/orchestrator", "/var/lib/nomad"]

          [[route]]
          name = "disk-space"
          matchers = ['alertname=~"DiskSpace(Low|Critical)"']
          plugin = "disk-cleanup"
          mode = "apply"
          cooldown = "15m"
          group_by = ["instance", "mountpoint"]
          max_nodes = 5                # never more than five nodes cleaning at once
          max_nodes_per_window = 50
          node_window = "1h"
        EOT
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}

job "remedy-agent" {
  type        = "system"
  datacenters = ["*"]

  group "agent" {
    restart {
      attempts = 10
      interval = "10m"
      delay    = "15s"
      mode     = "delay"
    }

    task "agent" {
      driver = "raw_exec"

      config {
        command = "/usr/local/bin/remedy"
        args    = ["agent", "--config", "${NOMAD_TASK_DIR}/remedy.toml", "--log-format", "json", "--listen", "127.0.0.1:9096"]
      }

      # SIGTERM, then shutdown_grace for executing runs, before Nomad kills it.
      kill_signal  = "SIGTERM"
      kill_timeout = "45s"

      template {
        destination = "secrets/store-password"
        data        = "{{ with nomadVar \"nomad/jobs/remedy-agent\" }}{{ .store_password }}{{ end }}"
      }

      template {
        destination = "local/remedy.toml"
        data        = <<-EOT
          state_dir = "/var/lib/remedy"

          [node]
          # As node_exporter's `instance` label names this node, port removed.
          name = "{{ env "attr.unique.hostname" }}"

          [store]
          url = "postgres://remedy@db.internal:5432/remedy?sslmode=require"
          password_file = "{{ env "NOMAD_SECRETS_DIR" }}/store-password"

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
          matchers = ['alertname=~"DiskSpace(Low|Critical)"']
          plugin = "disk-cleanup"
          mode = "apply"
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
