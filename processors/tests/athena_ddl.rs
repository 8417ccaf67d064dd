//! The Athena/Glue DDL in `infra/athena/` must describe exactly the columns,
//! order and types the archiver writes, or analysts' queries break silently.

use arrow_schema::DataType;
use pipeline_schemas::lake::Table;

fn athena_type(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "string".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::List(f) => format!("array<{}>", athena_type(f.data_type())),
        other => panic!("no Athena type for {other}"),
    }
}

#[test]
fn ddl_matches_the_lake_schemas() {
    for table in Table::ALL {
        let path = format!(
            "{}/../infra/athena/{}.sql",
            env!("CARGO_MANIFEST_DIR"),
            table.name()
        );
        let ddl = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let start = ddl
            .find(&format!("events.{} (", table.name()))
            .expect("CREATE TABLE");
        let body = &ddl[start..];
        let body = &body[body.find('(').expect("(") + 1..body.find("\n)").expect(")")];
        let columns: Vec<(String, String)> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut parts = l.split_whitespace();
                let name = parts.next().expect("name").to_owned();
                let ty = parts.next().expect("type").trim_end_matches(',').to_owned();
                (name, ty)
            })
            .collect();
        let want: Vec<(String, String)> = table
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), athena_type(f.data_type())))
            .collect();
        assert_eq!(columns, want, "{}", table.name());
        assert!(ddl.contains("'projection.enabled'                = 'true'"));
        assert!(ddl.contains(&format!("{}/dt=${{dt}}/hour=${{hour}}/", table.name())));
    }
}
