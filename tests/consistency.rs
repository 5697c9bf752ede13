//! The places a reaction touches, held together (`docs/adding-a-reaction.md` lists them):
//! every configuration variable the code reads is documented and every documented one is read;
//! the deploy template sets only variables the code reads; every table definition under
//! `deploy/tables/` is in the catalog; and every reaction has a row in the README's table whose
//! scenario, replayed, makes that reaction act, on tables the catalog defines and the deploy
//! template streams to the function.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ddb_stream_worker::catalog::{seed_definitions, DEFINITIONS};
use ddb_stream_worker::wiring;
use ddb_stream_worker::wiring::config::Config;
use serde_yaml_ng::Value;
use support::cli;

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The first-column names of a Markdown table's rows: `| \`NAME\` | ...`.
fn first_column_names(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Variables the reference documents that are the environment's, not the worker's.
const NOT_READ_BY_CONFIG: &[&str] = &["RUST_LOG", "AWS_*"];

#[test]
fn every_variable_the_configuration_reads_is_documented_and_no_other() {
    let read_by_code = Config::variable_names().unwrap();
    let documented: BTreeSet<String> = first_column_names(&read("docs/configuration.md"))
        .into_iter()
        .filter(|name| !NOT_READ_BY_CONFIG.contains(&name.as_str()))
        .collect();
    let undocumented: Vec<_> = read_by_code.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&read_by_code).collect();
    assert!(
        undocumented.is_empty(),
        "read by the code but not in docs/configuration.md: {undocumented:?}"
    );
    assert!(
        stale.is_empty(),
        "in docs/configuration.md but read by no code: {stale:?}"
    );
}

fn template() -> Value {
    serde_yaml_ng::from_str(&read("deploy/template.yaml")).unwrap()
}

#[test]
fn the_deploy_template_sets_only_variables_the_code_reads() {
    let template = template();
    let read_by_code = Config::variable_names().unwrap();
    let variables = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter_map(|r| r["Properties"]["Environment"]["Variables"].as_mapping())
        .flat_map(|v| v.keys())
        .filter_map(|k| k.as_str())
        .filter(|name| !NOT_READ_BY_CONFIG.contains(name))
        .map(str::to_string)
        .collect::<BTreeSet<_>>();
    assert!(!variables.is_empty(), "the template sets no variable");
    let unknown: Vec<_> = variables.difference(&read_by_code).collect();
    assert!(
        unknown.is_empty(),
        "the template sets variables no code reads (misspelled?): {unknown:?}"
    );
}

#[test]
fn every_table_definition_under_deploy_is_in_the_catalog() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tables");
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let catalog: BTreeSet<String> = DEFINITIONS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        files, catalog,
        "deploy/tables/*.json and src/catalog.rs DEFINITIONS differ"
    );
    for definition in seed_definitions() {
        assert!(
            files.contains(&definition.table_name),
            "{} is defined in a file of another name",
            definition.table_name
        );
    }
}

/// Table name (the parameter's default) of each DynamoDB stream event in the template:
/// `Stream: !Ref XStreamArn` streams the table of parameter `XTableName`.
fn streamed_tables(template: &Value) -> BTreeMap<String, String> {
    let mut tables = BTreeMap::new();
    for resource in template["Resources"].as_mapping().unwrap().values() {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (name, event) in events {
            if event["Type"].as_str() != Some("DynamoDB") {
                continue;
            }
            let Value::Tagged(stream) = &event["Properties"]["Stream"] else {
                panic!("stream event {name:?}: Stream is not a !Ref to a parameter");
            };
            let parameter = stream.value.as_str().unwrap();
            let prefix = parameter.strip_suffix("StreamArn").unwrap_or_else(|| {
                panic!("stream event {name:?}: {parameter} does not end in StreamArn")
            });
            let table = template["Parameters"][format!("{prefix}TableName")]["Default"]
                .as_str()
                .unwrap_or_else(|| panic!("no parameter {prefix}TableName with a default"))
                .to_string();
            tables.insert(table, name.as_str().unwrap().to_string());
        }
    }
    tables
}

/// `(reaction, scenario file)` from the README's reaction table.
fn readme_rows() -> BTreeMap<String, String> {
    read("README.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('`')?;
            let start = rest.find("(events/")? + 1;
            let file = &rest[start..start + rest[start..].find(')')?];
            Some((name.to_string(), file.to_string()))
        })
        .collect()
}

#[test]
fn every_reaction_has_a_readme_row_whose_scenario_makes_it_act_on_a_streamed_table() {
    let config = Config::from_lookup(|_| None).unwrap();
    let names: Vec<&str> = wiring::reactions(&config)
        .iter()
        .map(|r| r.name())
        .collect();
    let rows = readme_rows();
    let streamed = streamed_tables(&template());
    let defined: BTreeSet<String> = DEFINITIONS.iter().map(|(n, _)| n.to_string()).collect();
    for name in &names {
        let scenario = rows.get(*name).unwrap_or_else(|| {
            panic!("{name} has no row with an events/ scenario in the README's reaction table")
        });
        let state = tempfile::tempdir().unwrap();
        let lines = cli::replay(state.path(), &[scenario.trim_start_matches("events/")], &[]);
        let acted: BTreeSet<String> = lines
            .iter()
            .filter(|line| {
                line["reactions"].as_array().is_some_and(|reactions| {
                    reactions
                        .iter()
                        .any(|r| r["reaction"] == *name && r["outcome"] == "done")
                })
            })
            .map(|line| line["table"].as_str().unwrap().to_string())
            .collect();
        assert!(
            !acted.is_empty(),
            "replaying {scenario} (the README's scenario for {name}) never ran {name}"
        );
        for table in &acted {
            assert!(
                defined.contains(table),
                "{name} acts on {table}, which has no definition under deploy/tables/"
            );
            assert!(
                streamed.contains_key(table),
                "{name} acts on {table}, but deploy/template.yaml streams no event from it; streamed: {streamed:?}"
            );
        }
    }
    let unknown: Vec<_> = rows
        .keys()
        .filter(|row| !names.contains(&row.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "README rows for reactions the registry does not build: {unknown:?}"
    );
}
