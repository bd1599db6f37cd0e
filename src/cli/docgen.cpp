#include "docgen.hpp"

#include "help_text.hpp"

#include <algorithm>
#include <vector>

namespace cs::cli {

namespace {

// What the generators need to know about one option.
struct OptionInfo {
  std::vector<std::string> names; // "-m", "--manifest"
  std::string metavar;            // empty for a flag
  std::vector<std::string> choices;
  std::string description;
  bool takes_file = false;
  bool takes_dir = false;
};

// The options of `app` that a user types (not hidden, not positional), in definition order.
std::vector<OptionInfo> options_of(const CLI::App& app) {
  std::vector<OptionInfo> result;
  for (const CLI::Option* opt : app.get_options()) {
    if (!opt->nonpositional() || opt->get_group().empty()) {
      continue;
    }
    OptionInfo info;
    for (const auto& s : opt->get_snames()) {
      info.names.push_back("-" + s);
    }
    for (const auto& l : opt->get_lnames()) {
      info.names.push_back("--" + l);
    }
    info.description = opt->get_description();
    if (opt->get_items_expected_max() > 0) {
      std::string type = opt->get_type_name();
      if (const auto brace = type.find(":{"); brace != std::string::npos && type.back() == '}') {
        std::string list = type.substr(brace + 2, type.size() - brace - 3);
        type.resize(brace);
        std::size_t start = 0;
        for (std::size_t comma = list.find(','); start <= list.size();
             comma = list.find(',', start)) {
          info.choices.push_back(list.substr(start, comma - start));
          if (comma == std::string::npos) {
            break;
          }
          start = comma + 1;
        }
      }
      info.metavar = type.substr(0, type.find(':'));
      const std::string& name = info.names.back();
      info.takes_dir = info.metavar == "DIR" || name.find("-dir") != std::string::npos;
      info.takes_file =
          !info.takes_dir && (info.metavar == "FILE" || name.find("file") != std::string::npos ||
                              name == "--manifest");
    }
    result.push_back(std::move(info));
  }
  return result;
}

std::vector<const CLI::App*> subcommands_of(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App*) { return true; });
}

// Escapes text for roff: backslashes, hyphens (so they stay minus signs in options and
// examples) and a leading dot or quote that would start a request.
std::string roff(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  if (!out.empty() && (out.front() == '.' || out.front() == '\'')) {
    out.insert(0, "\\&");
  }
  return out;
}

std::string joined(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) {
    out += (out.empty() ? "" : separator) + item;
  }
  return out;
}

void man_options(std::ostream& out, const std::vector<OptionInfo>& options) {
  for (const OptionInfo& o : options) {
    out << ".TP\n";
    std::vector<std::string> names;
    for (const auto& n : o.names) {
      names.push_back("\\fB" + roff(n) + "\\fR");
    }
    out << joined(names, ", ");
    if (!o.metavar.empty()) {
      out << " \\fI" << roff(o.metavar) << "\\fR";
    }
    out << '\n' << roff(o.description);
    if (!o.choices.empty()) {
      out << " (one of: " << roff(joined(o.choices, ", ")) << ")";
    }
    out << '\n';
  }
}

void man_section(std::ostream& out, const Section& s) {
  out << ".SH " << s.title << '\n';
  std::size_t start = 0;
  while (!s.intro.empty()) {
    const std::size_t end = s.intro.find("\n\n", start);
    const std::string para = s.intro.substr(start, end - start);
    if (para.rfind("  ", 0) == 0) {
      out << ".PP\n.nf\n.RS 4\n";
      std::size_t line_start = 0;
      while (line_start <= para.size()) {
        const std::size_t nl = para.find('\n', line_start);
        out << roff(para.substr(line_start + 2, nl - line_start - 2)) << '\n';
        if (nl == std::string::npos) {
          break;
        }
        line_start = nl + 1;
      }
      out << ".RE\n.fi\n";
    } else {
      out << ".PP\n" << roff(para) << '\n';
    }
    if (end == std::string::npos) {
      break;
    }
    start = end + 2;
  }
  for (const Entry& e : s.entries) {
    out << ".TP\n\\fB" << roff(e.term) << "\\fR\n" << roff(e.text) << '\n';
  }
}

// Single-quoted for a shell: ' becomes '\''.
std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

// A description inside a zsh _arguments spec: brackets, colons and backslashes escaped.
std::string zsh_description(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '[' || c == ']' || c == ':' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

} // namespace

void write_man(std::ostream& out, const CLI::App& app, const std::string& version) {
  const std::string name = app.get_name();
  out << ".\\\" Generated by `" << name << " --generate man` from the definitions behind --help;"
      << " do not edit.\n";
  out << ".TH CRUNCH\\-SECRETS 1 \"\" \"" << name << " " << version << "\" \"User Commands\"\n";
  // The description starts with "crunch-secrets: " for --help; NAME has the name already.
  std::string summary = app.get_description();
  if (summary.rfind(name + ": ", 0) == 0) {
    summary.erase(0, name.size() + 2);
  }
  out << ".SH NAME\n" << roff(name) << " \\- " << roff(summary) << '\n';
  out << ".SH SYNOPSIS\n";
  for (const CLI::App* sub : subcommands_of(app)) {
    out << ".B " << roff(name) << "\n.B " << roff(sub->get_name()) << "\n";
    out << "[\\fIOPTIONS\\fR]";
    if (sub->get_name() == "run") {
      out << " \\fB\\-\\-\\fR \\fICOMMAND\\fR [\\fIARG\\fR...]";
    } else {
      out << " [\\fB\\-\\-\\fR \\fICOMMAND\\fR [\\fIARG\\fR...]]";
    }
    out << "\n.br\n";
  }
  out << ".B " << roff(name) << "\n\\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR\n";
  out << ".SH DESCRIPTION\n.PP\n"
      << roff(name)
      << " logs in to HashiCorp Vault or OpenBao once, reads every secret the references in "
         "its environment, manifest and (optionally) arguments name, in parallel, puts the "
         "values into environment variables, arguments and files on a tmpfs, and then replaces "
         "itself with COMMAND. If any secret cannot be resolved, nothing is executed and no "
         "file is left behind. No secret value is ever printed or logged.\n";
  out << ".SH COMMANDS\n";
  for (const CLI::App* sub : subcommands_of(app)) {
    out << ".TP\n\\fB" << roff(sub->get_name()) << "\\fR\n" << roff(sub->get_description()) << '\n';
  }
  out << ".SH OPTIONS\n.PP\nOptions of every command:\n";
  man_options(out, options_of(app));
  for (const CLI::App* sub : subcommands_of(app)) {
    out << ".SS " << roff(sub->get_name()) << " options\n";
    man_options(out, options_of(*sub));
  }
  for (const Section& s : help_sections()) {
    man_section(out, s);
  }
  out << ".SH SEE ALSO\n.BR bao (1),\n.BR vault (1)\n.PP\n"
         "/usr/share/doc/crunch-secrets/README.md and SECURITY.md\n";
}

void write_bash_completion(std::ostream& out, const CLI::App& app) {
  const std::string name = app.get_name();
  out << "# bash completion for " << name << "; generated by `" << name
      << " --generate bash`, do not edit.\n";
  out << "_crunch_secrets() {\n"
         "  local cur prev words cword i sub=\n"
         "  cur=${COMP_WORDS[COMP_CWORD]}\n"
         "  prev=${COMP_WORDS[COMP_CWORD-1]}\n"
         "  # After \"--\" comes the command and its arguments: complete as a command line.\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    if [[ ${COMP_WORDS[i]} == -- ]]; then\n"
         "      if ((i + 1 == COMP_CWORD)); then\n"
         "        COMPREPLY=($(compgen -c -- \"$cur\"))\n"
         "      else\n"
         "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
         "      fi\n"
         "      return\n"
         "    fi\n"
         "    [[ -z $sub && ${COMP_WORDS[i]} != -* ]] && sub=${COMP_WORDS[i]}\n"
         "  done\n";
  // Values of options that take one, whichever command they belong to.
  out << "  case $prev in\n";
  std::vector<const CLI::App*> apps{&app};
  for (const CLI::App* sub : subcommands_of(app)) {
    apps.push_back(sub);
  }
  std::vector<std::string> seen;
  for (const CLI::App* a : apps) {
    for (const OptionInfo& o : options_of(*a)) {
      if (o.metavar.empty() || std::find(seen.begin(), seen.end(), o.names.back()) != seen.end()) {
        continue;
      }
      seen.push_back(o.names.back());
      out << "  " << joined(o.names, "|") << ")\n    COMPREPLY=($(compgen ";
      if (!o.choices.empty()) {
        out << "-W " << shell_quote(joined(o.choices, " "));
      } else if (o.takes_dir) {
        out << "-d";
      } else if (o.takes_file) {
        out << "-f";
      } else {
        out << "-W ''";
      }
      out << " -- \"$cur\"))\n    return\n    ;;\n";
    }
  }
  out << "  esac\n";
  out << "  case $sub in\n";
  std::vector<std::string> sub_names;
  for (const CLI::App* sub : subcommands_of(app)) {
    sub_names.push_back(sub->get_name());
    std::vector<std::string> words;
    for (const OptionInfo& o : options_of(*sub)) {
      words.insert(words.end(), o.names.begin(), o.names.end());
    }
    words.emplace_back("--");
    out << "  " << sub->get_name() << ")\n    COMPREPLY=($(compgen -W "
        << shell_quote(joined(words, " ")) << " -- \"$cur\"))\n    ;;\n";
  }
  std::vector<std::string> top;
  for (const OptionInfo& o : options_of(app)) {
    top.insert(top.end(), o.names.begin(), o.names.end());
  }
  out << "  *)\n    COMPREPLY=($(compgen -W " << shell_quote(joined(sub_names, " ")) << "' '"
      << shell_quote(joined(top, " ")) << " -- \"$cur\"))\n    ;;\n";
  out << "  esac\n}\ncomplete -F _crunch_secrets " << name << '\n';
}

void write_zsh_completion(std::ostream& out, const CLI::App& app) {
  const std::string name = app.get_name();
  auto specs = [](const CLI::App& a) {
    std::vector<std::string> lines;
    for (const OptionInfo& o : options_of(a)) {
      std::string spec;
      const std::string desc = "[" + zsh_description(o.description) + "]";
      if (o.names.size() > 1) {
        spec = "'(" + joined(o.names, " ") + ")'{" + joined(o.names, ",") + "}'";
      } else {
        spec = "'" + o.names.front();
      }
      if (!o.metavar.empty() && o.names.back().rfind("--", 0) == 0) {
        spec += "=";
      }
      spec += desc;
      if (!o.metavar.empty()) {
        spec += ":" + zsh_description(o.metavar) + ":";
        if (!o.choices.empty()) {
          spec += "(" + joined(o.choices, " ") + ")";
        } else if (o.takes_dir) {
          spec += "_files -/";
        } else if (o.takes_file) {
          spec += "_files";
        } else {
          spec += " ";
        }
      }
      spec += "'";
      lines.push_back(spec);
    }
    return lines;
  };
  out << "#compdef " << name << "\n# zsh completion for " << name << "; generated by `" << name
      << " --generate zsh`, do not edit.\n";
  out << "_crunch_secrets() {\n  local curcontext=$curcontext state line\n  typeset -A opt_args\n";
  out << "  _arguments -C \\\n";
  for (const auto& spec : specs(app)) {
    out << "    " << spec << " \\\n";
  }
  out << "    '1:command:->command' \\\n    '*::argument:->argument'\n";
  out << "  case $state in\n  command)\n    local -a commands=(\n";
  for (const CLI::App* sub : subcommands_of(app)) {
    out << "      " << shell_quote(sub->get_name() + ":" + sub->get_description()) << '\n';
  }
  out << "    )\n    _describe -t commands command commands\n    ;;\n";
  out << "  argument)\n    case $line[1] in\n";
  for (const CLI::App* sub : subcommands_of(app)) {
    out << "    " << sub->get_name() << ")\n      _arguments -S \\\n";
    for (const auto& spec : specs(*sub)) {
      out << "        " << spec << " \\\n";
    }
    out << "        '*::command:_normal'\n      ;;\n";
  }
  out << "    esac\n    ;;\n  esac\n}\n_crunch_secrets \"$@\"\n";
}

} // namespace cs::cli
