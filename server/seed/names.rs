//! Word lists for plausible Guinean people and places in Conakry.

use rand::Rng;

/// A naming tradition: family names with the first names usual among them.
struct Group {
    weight: u32,
    families: &'static [&'static str],
    men: &'static [&'static str],
    women: &'static [&'static str],
    /// Chance that a first name is a compound one ("Mamadou Saliou").
    compound: f64,
}

const FULA: Group = Group {
    weight: 40,
    families: &[
        "Diallo", "Bah", "Barry", "Sow", "Baldé", "Diallo", "Bah", "Barry", "Sow", "Jallo",
        "Baldé", "Diané", "Sall", "Ba", "Tall",
    ],
    men: &[
        "Mamadou",
        "Alpha",
        "Ibrahima",
        "Oumar",
        "Thierno",
        "Boubacar",
        "Amadou",
        "Abdourahmane",
        "Saïkou",
        "Elhadj",
        "Tidiane",
        "Souleymane",
        "Alhassane",
        "Mamadou Saliou",
        "Mamadou Aliou",
        "Mamadou Lamarana",
        "Thierno Amadou",
        "Abdoulaye",
        "Ousmane",
        "Moctar",
    ],
    women: &[
        "Fatoumata",
        "Mariama",
        "Aïssatou",
        "Kadiatou",
        "Djénabou",
        "Oumou",
        "Hawa",
        "Ramatoulaye",
        "Binta",
        "Diariou",
        "Aminata",
        "Fatoumata Binta",
        "Mariama Ciré",
        "Hadiatou",
        "Kadidiatou",
        "Safiatou",
        "Mariama Dalanda",
        "Néné",
        "Saran",
        "Tenin",
    ],
    compound: 0.15,
};

const MALINKE: Group = Group {
    weight: 30,
    families: &[
        "Camara",
        "Condé",
        "Keïta",
        "Touré",
        "Traoré",
        "Kouyaté",
        "Kaba",
        "Kourouma",
        "Konaté",
        "Cissé",
        "Fofana",
        "Doumbouya",
        "Diakité",
        "Sidibé",
        "Kanté",
        "Magassouba",
        "Mara",
        "Oularé",
        "Dioubaté",
        "Koné",
    ],
    men: &[
        "Sékou", "Lansana", "Mohamed", "Moussa", "Mamady", "Fodé", "Nfaly", "Sidiki", "Karamo",
        "Namory", "Mory", "Lamine", "Sékouba", "Fodéba", "Sory", "Bakary", "Daouda", "Seydou",
        "Moriba", "Kémoko",
    ],
    women: &[
        "Fanta",
        "Mariame",
        "Sira",
        "Nantenin",
        "Kadiatou",
        "Djéné",
        "Fatoumata",
        "Aminata",
        "Saran",
        "Makoura",
        "Hawa",
        "Mawa",
        "Kankou",
        "Sona",
        "Fatou",
        "Bintou",
        "Massa",
        "Sitan",
        "Mabinty",
        "Aïssata",
    ],
    compound: 0.05,
};

const SUSU: Group = Group {
    weight: 20,
    families: &[
        "Soumah", "Sylla", "Bangoura", "Camara", "Fofana", "Youla", "Cissé", "Touré", "Yansané",
        "Conté", "Daffé", "Soumah", "Bangoura", "Sylla", "Kaba", "Dramé", "Tounkara", "Fadiga",
    ],
    men: &[
        "Abdoulaye",
        "Alseny",
        "Mohamed",
        "Ibrahima",
        "Ousmane",
        "Seny",
        "Kerfala",
        "Alhassane",
        "Almamy",
        "Sékou",
        "Aboubacar",
        "Mamadouba",
        "Ansoumane",
        "Naby",
        "Momo",
        "Yaya",
        "Kabiné",
        "Lanciné",
    ],
    women: &[
        "Mabinty",
        "M'Balia",
        "Fatou",
        "Kadiatou",
        "Aïcha",
        "Mariama",
        "Adama",
        "Maïmouna",
        "Hadja",
        "Yarie",
        "Nènè",
        "Sayon",
        "Fatoumata",
        "Aminata",
        "Mafoudia",
        "Salématou",
        "Koumba",
        "Djaka",
    ],
    compound: 0.03,
};

const FOREST: Group = Group {
    weight: 10,
    families: &[
        "Loua",
        "Guilavogui",
        "Haba",
        "Kolié",
        "Lamah",
        "Zoumanigui",
        "Koïvogui",
        "Béavogui",
        "Gbamou",
        "Millimono",
        "Kamano",
        "Tolno",
        "Sagno",
        "Onivogui",
        "Dopavogui",
        "Kpoghomou",
        "Léno",
        "Soropogui",
        "Théa",
        "Gomou",
    ],
    men: &[
        "Pierre",
        "Jean",
        "Paul",
        "Joseph",
        "Pascal",
        "François",
        "Michel",
        "Yves",
        "Célestin",
        "Emmanuel",
        "Albert",
        "Zézé",
        "Nyankoye",
        "Koly",
        "Fassou",
        "Moriba",
        "Siba",
        "Augustin",
    ],
    women: &[
        "Marie",
        "Jeanne",
        "Élise",
        "Lucie",
        "Rose",
        "Séraphine",
        "Nathalie",
        "Yomba",
        "Thérèse",
        "Odette",
        "Honorine",
        "Pauline",
        "Marthe",
        "Cécile",
        "Louise",
        "Bernadette",
    ],
    compound: 0.0,
};

const GROUPS: [&Group; 4] = [&FULA, &MALINKE, &SUSU, &FOREST];

fn pick<'a, R: Rng>(rng: &mut R, list: &'a [&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

/// "Fatoumata Binta Diallo", "Sékou Condé", "Nyankoye Lamah", ...
pub fn person_name<R: Rng>(rng: &mut R) -> String {
    let total: u32 = GROUPS.iter().map(|g| g.weight).sum();
    let mut roll = rng.random_range(0..total);
    let group = GROUPS
        .iter()
        .find(|g| {
            if roll < g.weight {
                true
            } else {
                roll -= g.weight;
                false
            }
        })
        .unwrap_or(&GROUPS[0]);
    let firsts = if rng.random_bool(0.5) {
        group.men
    } else {
        group.women
    };
    let mut first = pick(rng, firsts).to_owned();
    if !first.contains(' ') && rng.random_bool(group.compound) {
        let second = pick(rng, firsts);
        if second != first && !second.contains(' ') {
            first.push(' ');
            first.push_str(second);
        }
    }
    format!("{first} {}", pick(rng, group.families))
}

/// A mobile number in E.164: Orange 62x, MTN 66x, Cellcom 65x (+224 6xx xx xx xx).
pub fn mobile_number<R: Rng>(rng: &mut R) -> String {
    let operator = match rng.random_range(0..100) {
        0..55 => "62",
        55..90 => "66",
        _ => "65",
    };
    format!("+224{operator}{:07}", rng.random_range(0..10_000_000u32))
}

/// The mobile-money operator of a number, if it has one we accept payments from.
pub fn operator_of(phone: &str) -> Operator {
    match phone.get(4..6) {
        Some("62") => Operator::Orange,
        Some("66") => Operator::Mtn,
        _ => Operator::Other,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Orange,
    Mtn,
    Other,
}

/// The five communes of Conakry with an approximate centre (latitude, longitude) and some
/// of their quartiers.
pub const COMMUNES: [(&str, f64, f64, &[&str]); 5] = [
    (
        "Kaloum",
        9.512,
        -13.710,
        &[
            "Boulbinet",
            "Almamya",
            "Sandervalia",
            "Coronthie",
            "Tombo",
            "Manquepas",
            "Koulewondy",
        ],
    ),
    (
        "Dixinn",
        9.550,
        -13.670,
        &[
            "Landréah",
            "Camayenne",
            "Minière",
            "Belle-Vue",
            "Hafia",
            "Dixinn Port",
        ],
    ),
    (
        "Matam",
        9.540,
        -13.650,
        &[
            "Madina",
            "Bonfi",
            "Boussoura",
            "Coléah",
            "Hermakono",
            "Touguiwondy",
        ],
    ),
    (
        "Ratoma",
        9.600,
        -13.640,
        &[
            "Kipé",
            "Nongo",
            "Taouyah",
            "Kaporo",
            "Lambanyi",
            "Sonfonia",
            "Cosa",
            "Hamdallaye",
            "Koloma",
            "Kobaya",
        ],
    ),
    (
        "Matoto",
        9.570,
        -13.600,
        &[
            "Gbessia", "Matoto", "Sangoyah", "Enta", "Dabompa", "Kissosso", "Tombolia", "Yimbaya",
        ],
    ),
];

/// The demo's sites: code, name, commune index in [`COMMUNES`], kind, sensitive, quartier.
pub const DEMO_SITES: [(&str, &str, usize, &str, bool, &str); 12] = [
    ("ALM", "Galerie Almamya", 0, "commercial", true, "Almamya"),
    (
        "BOU",
        "Résidence Boulbinet",
        0,
        "residential",
        false,
        "Boulbinet",
    ),
    ("LAN", "Cité Landréah", 1, "residential", false, "Landréah"),
    ("CAM", "Résidence Camayenne", 1, "mixed", false, "Camayenne"),
    (
        "MAD",
        "Marché Madina – Boutiques",
        2,
        "commercial",
        true,
        "Madina",
    ),
    ("BON", "Résidence Bonfi", 2, "residential", false, "Bonfi"),
    ("KIP", "Cité Kipé", 3, "residential", false, "Kipé"),
    ("NON", "Résidence Nongo", 3, "residential", false, "Nongo"),
    ("TAO", "Centre Taouyah", 3, "mixed", false, "Taouyah"),
    ("GBE", "Cité Gbessia", 4, "residential", false, "Gbessia"),
    ("MTO", "Résidence Matoto", 4, "mixed", true, "Matoto"),
    (
        "SAN",
        "Galerie Sangoyah",
        4,
        "commercial",
        false,
        "Sangoyah",
    ),
];

/// Note of a call or visit, by outcome.
pub fn interaction_note<R: Rng>(rng: &mut R, outcome: &str) -> &'static str {
    let notes: &[&str] = match outcome {
        "no_answer" => &[
            "Pas de réponse",
            "Téléphone éteint",
            "Messagerie, message laissé",
        ],
        "wrong_number" => &["Numéro erroné", "Le numéro appartient à une autre personne"],
        "promise_made" => &[
            "Promet de payer après la paie",
            "Promet de régler à la fin de la semaine",
            "Attend un transfert de la famille",
            "Paiera en deux fois",
        ],
        "paid" => &["Paiement reçu", "Paiement en espèces reçu, reçu remis"],
        "refused" => &[
            "Refuse de payer",
            "Refuse de payer tant que les travaux ne sont pas faits",
        ],
        "absent" => &[
            "Locataire absent, voisin informé",
            "Porte fermée",
            "Absent, avis de passage laissé",
        ],
        "tenant_moved" => &["Le locataire a déménagé", "Logement vide"],
        "dispute" => &[
            "Conteste le montant du loyer",
            "Conteste un mois déjà payé",
            "Litige sur les charges d'eau",
        ],
        _ => &["Rappeler plus tard", "Échange avec le gestionnaire du site"],
    };
    notes[rng.random_range(0..notes.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn names_and_numbers_are_plausible() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..1000 {
            let name = person_name(&mut rng);
            assert!(name.split(' ').count() >= 2, "{name}");
            let phone = mobile_number(&mut rng);
            assert_eq!(phone.len(), 13, "{phone}");
            assert!(phone.starts_with("+2246"));
            assert!(phone[1..].chars().all(|c| c.is_ascii_digit()));
        }
        assert_eq!(operator_of("+224621234567"), Operator::Orange);
        assert_eq!(operator_of("+224661234567"), Operator::Mtn);
        assert_eq!(operator_of("+224651234567"), Operator::Other);
    }

    #[test]
    fn demo_site_codes_are_unique_three_letters() {
        let mut codes: Vec<_> = DEMO_SITES.iter().map(|s| s.0).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase()))
        );
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), DEMO_SITES.len());
    }
}
