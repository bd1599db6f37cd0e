#!/usr/bin/env cwl-runner
# The same tool as a workflow step: the workflow input is marked secret too, as in cwltool's
# own tests/wf/secret_wf.cwl.
cwlVersion: v1.2
class: Workflow
$namespaces:
  cwltool: "http://commonwl.org/cwltool#"
hints:
  cwltool:Secrets:
    secrets: [db_password]
inputs:
  db_password: string
  secrets_dir: string
  vault_token_file: string?
outputs:
  report:
    type: File
    outputSource: use/report
steps:
  use:
    run: secret-tool.cwl
    in:
      db_password: db_password
      secrets_dir: secrets_dir
      vault_token_file: vault_token_file
    out: [report]
