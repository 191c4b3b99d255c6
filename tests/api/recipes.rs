//! The business recipes of docs/api-guide.md cannot drift from the API: every JSON request
//! body of the "Business recipes" section is decoded, as grpcurl would send it, against the
//! input message of the method it is sent to, from the server's own descriptor set.

use prost_reflect::{DescriptorPool, DynamicMessage};

const GUIDE: &str = include_str!("../../docs/api-guide.md");

/// (`akig.v1.Service/Method`, JSON body) of every `grpcurl ... -d @ ... <<'JSON'` of the section.
fn recipes(section: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some((command, _)) = line.split_once("<<'JSON'") else {
            continue;
        };
        let method = command
            .split_whitespace()
            .find(|word| word.starts_with("akig.v1."))
            .unwrap_or_else(|| panic!("no method in {line:?}"))
            .to_owned();
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "JSON").collect();
        found.push((method, body.join("\n")));
    }
    found
}

#[test]
fn every_recipe_body_decodes_against_the_descriptors() {
    let section = GUIDE
        .split_once("## Business recipes")
        .expect("the section")
        .1;
    let recipes = recipes(section);
    let methods: Vec<&str> = recipes.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        [
            "akig.v1.AuthService/Login",
            "akig.v1.CollectionsService/SearchTenants",
            "akig.v1.CollectionsService/RecordCall",
            "akig.v1.CollectionsService/RecordPayment",
            "akig.v1.CollectionsService/RecordVisit",
            "akig.v1.CollectionsService/GetPayment",
        ]
    );
    let pool = DescriptorPool::decode(akig::proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    for (path, body) in &recipes {
        let (service, method) = path.split_once('/').expect("service/method");
        let method = pool
            .get_service_by_name(service)
            .unwrap_or_else(|| panic!("no service {service}"))
            .methods()
            .find(|m| m.name() == method)
            .unwrap_or_else(|| panic!("no method {path}"));
        let mut json = serde_json::Deserializer::from_str(body);
        // Unknown fields refused, as the server's JSON gateways and grpcurl refuse them.
        let message = DynamicMessage::deserialize(method.input(), &mut json)
            .unwrap_or_else(|e| panic!("{path}: {e}\n{body}"));
        json.end().expect("one JSON value");
        // Nothing the body says was dropped: encoded back, every top-level key is there.
        let keys = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(body)
            .expect("an object");
        for key in keys.keys() {
            let field = method
                .input()
                .get_field_by_json_name(key)
                .unwrap_or_else(|| panic!("{path}: no field {key}"));
            assert!(message.has_field(&field), "{path}: {key} not set");
        }
    }
}
