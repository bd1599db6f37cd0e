#!/usr/bin/env cwl-runner
# A tool that consumes one secret three ways: on its command line, in an environment variable
# and in a config file. The input `db_password` holds a *reference* to the secret, in the
# template form `${vault:<path>#<key>}` or `${arvados:credential/<uuid-or-name>#secret}`, never
# the value. crunch-secrets (the first element of baseCommand) resolves the reference just
# before the program starts; cwltool only ever handles the reference, which it also hides from
# its logs because of the cwltool:Secrets hint. See README.md in this directory.
cwlVersion: v1.2
class: CommandLineTool
$namespaces:
  cwltool: "http://commonwl.org/cwltool#"
hints:
  cwltool:Secrets:
    secrets: [db_password]
requirements:
  InlineJavascriptRequirement: {}
  EnvVarRequirement:
    envDef:
      # An inline reference in an environment value: crunch-secrets substitutes it.
      DB_PASSWORD: $(inputs.db_password)
  InitialWorkDirRequirement:
    listing:
      # The config *template* lands in the working directory (on disk) and holds only the
      # reference; crunch-secrets renders the real file into the tmpfs secrets directory.
      - entryname: app.conf.tmpl
        entry: |
          user = app
          password = $(inputs.db_password)
      - entryname: crunch-secrets.json
        entry: |
          {"version": 1, "files": [{"path": "app.conf", "template_file": "app.conf.tmpl"}]}
inputs:
  db_password:
    type: string
    doc: A reference such as ${vault:secret/data/app#password} (the template form).
  program:
    type: File
    default:
      class: File
      location: use-secret.py
  secrets_dir:
    type: string
    doc: A fresh directory on tmpfs for the rendered config file (unique per run).
  vault_token_file:
    type: string?
    doc: >-
      Path of a file holding the Vault token (for example on /dev/shm). Use it instead of
      --preserve-environment VAULT_TOKEN with --cachedir: cwltool puts preserved variables in
      its cache key and logs that key with --debug.
baseCommand: [crunch-secrets, run, --argv-templates, --manifest, crunch-secrets.json]
arguments:
  - prefix: --secrets-dir
    valueFrom: $(inputs.secrets_dir)
  - prefix: --token-file
    valueFrom: $(inputs.vault_token_file)
  - valueFrom: "--"
  - valueFrom: python3
  - valueFrom: $(inputs.program.path)
  - prefix: --password
    valueFrom: $(inputs.db_password)
stdout: report.json
outputs:
  report:
    type: File
    outputBinding:
      glob: report.json
