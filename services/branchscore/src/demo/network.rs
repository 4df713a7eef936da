//! A deterministic synthetic branch network: branches, staff, a product
//! catalogue, clients with distinct buying behaviours and the ERP's sales
//! lines over the months before the as-of date. Pure: the same spec always
//! yields the same network.
use branchscore_proto::clients::v1::{
    Branch, Client, Employee, LineKind, Product, ProductLine, Segment, TransactionLine,
};
use branchscore_proto::common::v1::{ClientKind, Date, EmployeeRole, Money, SizeBand};
use chrono::{Datelike, Months, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub seed: u64,
    pub branches: usize,
    pub clients: usize,
    /// Months of history before the as-of month.
    pub months: u32,
    /// The last business date generated.
    pub as_of: NaiveDate,
    pub currency: String,
}

/// How a client buys; the mix gives every lifecycle status and class something to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Large, steady monthly orders across many product lines.
    KeyAccount,
    /// Buys most months.
    Regular,
    /// Buys in the high seasons only.
    Seasonal,
    /// A few purchases a year.
    Occasional,
    /// Regular until it stops buying for good.
    Churned,
    /// Stopped for half a year, then came back.
    Returning,
    /// First purchase within the last three months.
    New,
    /// Registered, never bought.
    Prospect,
}

impl Behaviour {
    /// Share of clients (per mille) showing each behaviour.
    const MIX: [(Behaviour, u32); 8] = [
        (Behaviour::KeyAccount, 40),
        (Behaviour::Regular, 330),
        (Behaviour::Seasonal, 150),
        (Behaviour::Occasional, 160),
        (Behaviour::Churned, 110),
        (Behaviour::Returning, 50),
        (Behaviour::New, 100),
        (Behaviour::Prospect, 60),
    ];

    fn pick(rng: &mut ChaCha8Rng) -> Behaviour {
        let mut roll = rng.random_range(0..1000);
        for (behaviour, share) in Behaviour::MIX {
            if roll < share {
                return behaviour;
            }
            roll -= share;
        }
        Behaviour::Regular
    }

    pub fn label(self) -> &'static str {
        match self {
            Behaviour::KeyAccount => "key account",
            Behaviour::Regular => "regular",
            Behaviour::Seasonal => "seasonal",
            Behaviour::Occasional => "occasional",
            Behaviour::Churned => "churned",
            Behaviour::Returning => "returning",
            Behaviour::New => "new",
            Behaviour::Prospect => "prospect",
        }
    }
}

/// Demand by calendar month (January first): spring and autumn peaks, a summer lull.
const SEASONALITY: [f64; 12] = [0.80, 0.85, 1.10, 1.15, 1.05, 0.90, 0.75, 0.80, 1.10, 1.20, 1.15, 0.95];

const CITIES: [(&str, &str, &str); 12] = [
    ("WAW", "Warszawa", "mazowieckie"),
    ("KRK", "Kraków", "małopolskie"),
    ("WRO", "Wrocław", "dolnośląskie"),
    ("POZ", "Poznań", "wielkopolskie"),
    ("GDN", "Gdańsk", "pomorskie"),
    ("LDZ", "Łódź", "łódzkie"),
    ("KTW", "Katowice", "śląskie"),
    ("LUB", "Lublin", "lubelskie"),
    ("SZZ", "Szczecin", "zachodniopomorskie"),
    ("BIA", "Białystok", "podlaskie"),
    ("RZE", "Rzeszów", "podkarpackie"),
    ("TOR", "Toruń", "kujawsko-pomorskie"),
];

/// (id, name, products with their typical order value in minor units).
type CatalogueLine = (&'static str, &'static str, &'static [(&'static str, i64)]);

/// Product lines with their products.
const CATALOGUE: [CatalogueLine; 5] = [
    ("PL-PRINT", "Printing", &[("Business cards", 18_000), ("Brochures", 95_000), ("Large format", 240_000)]),
    ("PL-PACK", "Packaging", &[("Cardboard boxes", 62_000), ("Labels", 21_000), ("Gift packaging", 48_000)]),
    ("PL-OFFICE", "Office supplies", &[("Paper", 12_000), ("Toner", 39_000), ("Stationery", 8_500)]),
    ("PL-SIGN", "Signage", &[("Shop signs", 310_000), ("Banners", 76_000)]),
    ("PL-DESIGN", "Design services", &[("Logo design", 150_000), ("Brand book", 420_000)]),
];

const INDUSTRIES: [&str; 8] =
    ["retail", "hospitality", "construction", "education", "healthcare", "logistics", "it", "manufacturing"];

const SALES_PER_BRANCH: usize = 5;

/// The generated network, as the ERP would send it.
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub branches: Vec<Branch>,
    pub employees: Vec<Employee>,
    pub product_lines: Vec<ProductLine>,
    pub products: Vec<Product>,
    pub clients: Vec<Client>,
    /// Behaviour of each client, parallel to `clients`.
    pub behaviours: Vec<Behaviour>,
    pub lines: Vec<TransactionLine>,
    /// The ideal client portrait: what each kind of client should use.
    pub segments: Vec<Segment>,
}

/// Generates the network for `spec`.
pub fn generate(spec: &NetworkSpec) -> Network {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut network = Network::default();
    let branch_count = spec.branches.clamp(1, CITIES.len());
    for &(code, city, region) in &CITIES[..branch_count] {
        network.branches.push(Branch {
            id: code.into(),
            name: format!("{city} branch"),
            region: region.into(),
            currency: spec.currency.clone(),
        });
        network.employees.extend(staff_of(code, city));
    }
    let mut prices = Vec::new();
    for (line_id, line_name, products) in CATALOGUE {
        network.product_lines.push(ProductLine { id: line_id.into(), name: line_name.into() });
        for (index, (name, price)) in products.iter().enumerate() {
            let id = format!("{line_id}-{:02}", index + 1);
            network.products.push(Product { id: id.clone(), product_line_id: line_id.into(), name: (*name).into() });
            prices.push((id, *price));
        }
    }
    network.segments = segments();
    let first_month = first_of_month(spec.as_of) - Months::new(spec.months);
    for n in 0..spec.clients {
        let branch = &network.branches[n % network.branches.len()];
        let behaviour = Behaviour::pick(&mut rng);
        let seller = format!("{}-S{}", branch.id, rng.random_range(1..=SALES_PER_BRANCH));
        let client = client_record(&mut rng, n, branch, &seller, behaviour, first_month, spec.as_of);
        let history = History { behaviour, spec, first_month, prices: &prices };
        history.lines_for(&mut rng, &client, &seller, &mut network.lines);
        network.clients.push(client);
        network.behaviours.push(behaviour);
    }
    network
}

/// Big businesses, small businesses and private clients, each with the
/// products a client of its kind should use.
fn segments() -> Vec<Segment> {
    let segment =
        |id: &str, name: &str, priority, kinds: &[ClientKind], bands: &[SizeBand], targets: &[&str]| Segment {
            id: id.into(),
            name: name.into(),
            priority,
            kinds: kinds.iter().map(|k| *k as i32).collect(),
            size_bands: bands.iter().map(|b| *b as i32).collect(),
            industries: Vec::new(),
            target_product_ids: targets.iter().map(|t| (*t).into()).collect(),
        };
    vec![
        segment(
            "key-accounts",
            "big businesses",
            10,
            &[ClientKind::B2b],
            &[SizeBand::Medium, SizeBand::Large],
            &["PL-PRINT-02", "PL-PRINT-03", "PL-PACK-01", "PL-OFFICE-01", "PL-OFFICE-02", "PL-SIGN-02", "PL-DESIGN-02"],
        ),
        segment(
            "small-business",
            "small businesses",
            20,
            &[ClientKind::B2b],
            &[],
            &["PL-PRINT-01", "PL-PACK-02", "PL-OFFICE-01", "PL-OFFICE-02", "PL-SIGN-01", "PL-DESIGN-01"],
        ),
        segment(
            "private",
            "private clients",
            30,
            &[ClientKind::B2c],
            &[],
            &["PL-PRINT-01", "PL-PACK-03", "PL-OFFICE-03"],
        ),
    ]
}

fn staff_of(branch: &str, city: &str) -> Vec<Employee> {
    let mut staff = vec![
        employee(format!("{branch}-M"), branch, format!("{city} manager"), EmployeeRole::BranchManager, ""),
        employee(format!("{branch}-L"), branch, format!("{city} team lead"), EmployeeRole::TeamLead, ""),
        employee(format!("{branch}-Q"), branch, format!("{city} quality control"), EmployeeRole::QualityControl, ""),
    ];
    let lead = format!("{branch}-L");
    for n in 1..=SALES_PER_BRANCH {
        staff.push(employee(format!("{branch}-S{n}"), branch, format!("{city} sales {n}"), EmployeeRole::Sales, &lead));
    }
    staff
}

fn employee(id: String, branch: &str, full_name: String, role: EmployeeRole, team_lead: &str) -> Employee {
    Employee {
        id,
        branch_id: branch.into(),
        full_name,
        role: role as i32,
        team_lead_id: team_lead.into(),
        active: true,
    }
}

#[allow(clippy::too_many_arguments)]
fn client_record(
    rng: &mut ChaCha8Rng,
    n: usize,
    branch: &Branch,
    seller: &str,
    behaviour: Behaviour,
    first_month: NaiveDate,
    as_of: NaiveDate,
) -> Client {
    let business = behaviour == Behaviour::KeyAccount || rng.random_bool(0.7);
    let size_band = match (behaviour, rng.random_range(0..10)) {
        (Behaviour::KeyAccount, _) => SizeBand::Large,
        (_, 0..=4) => SizeBand::Micro,
        (_, 5..=7) => SizeBand::Small,
        (_, 8) => SizeBand::Medium,
        _ => SizeBand::Large,
    };
    let known_since = match behaviour {
        Behaviour::New | Behaviour::Prospect => first_of_month(as_of) - Months::new(rng.random_range(2..6)),
        _ => first_month - Months::new(rng.random_range(0..36)),
    };
    Client {
        id: format!("C{:06}", n + 1),
        name: if business { format!("Firma {} sp. z o.o.", n + 1) } else { format!("Klient {}", n + 1) },
        kind: if business { ClientKind::B2b } else { ClientKind::B2c } as i32,
        industry: if business { INDUSTRIES[rng.random_range(0..INDUSTRIES.len())].into() } else { String::new() },
        size_band: if business { size_band as i32 } else { SizeBand::Unspecified as i32 },
        region: branch.region.clone(),
        founding_year: if business { rng.random_range(1990..=2024) } else { 0 },
        branch_id: branch.id.clone(),
        owner_employee_id: seller.into(),
        known_since: Some(Date::from(known_since)),
        ..Client::default()
    }
}

/// Generates one client's sales and returns month by month.
struct History<'a> {
    behaviour: Behaviour,
    spec: &'a NetworkSpec,
    first_month: NaiveDate,
    prices: &'a [(String, i64)],
}

impl History<'_> {
    fn lines_for(&self, rng: &mut ChaCha8Rng, client: &Client, seller: &str, out: &mut Vec<TransactionLine>) {
        let months = self.spec.months + 1;
        // Where the behaviour's breaks fall, in months from the first one.
        let churn_at = rng.random_range(months / 3..months.saturating_sub(5).max(months / 3 + 1));
        let pause = rng.random_range(months / 4..months / 2);
        let new_from = months.saturating_sub(rng.random_range(1..=3));
        let (monthly_chance, size) = match self.behaviour {
            Behaviour::KeyAccount => (0.97, rng.random_range(6.0..14.0)),
            Behaviour::Regular | Behaviour::Churned | Behaviour::Returning => (0.9, rng.random_range(1.0..3.0)),
            Behaviour::Seasonal => (0.0, rng.random_range(1.5..4.0)),
            Behaviour::Occasional => (0.2, rng.random_range(0.5..2.0)),
            Behaviour::New => (0.9, rng.random_range(1.0..3.0)),
            Behaviour::Prospect => return,
        };
        // A client sticks to a few favourite products, key accounts to many.
        let favourites = match self.behaviour {
            Behaviour::KeyAccount => rng.random_range(5..=9),
            _ => rng.random_range(1..=4),
        };
        let start = rng.random_range(0..self.prices.len());
        let favourites: Vec<usize> = (0..favourites).map(|k| (start + k * 3) % self.prices.len()).collect();
        // Key accounts and half the regulars buy on contract: seasons barely move them.
        let damping = match self.behaviour {
            Behaviour::KeyAccount => 0.2,
            Behaviour::Regular if rng.random_bool(0.5) => 0.2,
            _ => 1.0,
        };
        let mut document = 0u32;
        for offset in 0..months {
            let month = self.first_month + Months::new(offset);
            let season = 1.0 + (SEASONALITY[month.month0() as usize] - 1.0) * damping;
            let chance = match self.behaviour {
                Behaviour::Seasonal => {
                    if season >= 1.1 {
                        0.85
                    } else {
                        0.03
                    }
                }
                Behaviour::Churned if offset >= churn_at => 0.0,
                Behaviour::Returning if (pause..pause + 6).contains(&offset) => 0.0,
                Behaviour::New if offset < new_from => 0.0,
                _ => monthly_chance,
            };
            // The as-of month is only partly over.
            let elapsed = if offset + 1 == months { f64::from(self.spec.as_of.day()) / 30.0 } else { 1.0 };
            if !rng.random_bool((chance * elapsed).min(1.0)) {
                continue;
            }
            let visits = if self.behaviour == Behaviour::KeyAccount { 2 } else { 1 };
            for _ in 0..visits {
                let Some(date) = self.business_day(rng, month) else { continue };
                document += 1;
                let document_id = format!("{}-{}-{document}", client.id, date.format("%Y%m%d"));
                // The usual basket (the first two favourites), now and then one more.
                let mut basket: Vec<usize> = favourites.iter().take(2).copied().collect();
                if favourites.len() > 2 && rng.random_bool(0.3) {
                    basket.push(favourites[rng.random_range(2..favourites.len())]);
                }
                for (item, &favourite) in basket.iter().enumerate() {
                    let (product, price) = &self.prices[favourite];
                    let amount = (*price as f64 * size * season * rng.random_range(0.85..1.15)).round() as i64;
                    let line = self.line(
                        format!("{document_id}-{}", item + 1),
                        &document_id,
                        client,
                        product,
                        seller,
                        date,
                        amount,
                    );
                    // About one line in forty comes back within a month.
                    if rng.random_bool(0.025) {
                        let back = (date + chrono::Days::new(rng.random_range(3..30))).min(self.spec.as_of);
                        let refund = -(amount / rng.random_range(1..=3));
                        let id = format!("{}-R", line.id);
                        let mut returned =
                            self.line(id, &format!("{document_id}-R"), client, product, seller, back, refund);
                        returned.kind = LineKind::Return as i32;
                        out.push(line);
                        out.push(returned);
                    } else {
                        out.push(line);
                    }
                }
            }
        }
    }

    /// A weekday of `month` on or before the as-of date.
    fn business_day(&self, rng: &mut ChaCha8Rng, month: NaiveDate) -> Option<NaiveDate> {
        let last = (month + Months::new(1)).pred_opt()?.min(self.spec.as_of);
        if last < month {
            return None;
        }
        let span = (last - month).num_days() as u64;
        let mut date = month + chrono::Days::new(rng.random_range(0..=span));
        while date.weekday().number_from_monday() > 5 && date > month {
            date = date.pred_opt()?;
        }
        Some(date)
    }

    #[allow(clippy::too_many_arguments)]
    fn line(
        &self,
        id: String,
        document_id: &str,
        client: &Client,
        product: &str,
        seller: &str,
        date: NaiveDate,
        minor_units: i64,
    ) -> TransactionLine {
        TransactionLine {
            id,
            document_id: document_id.into(),
            client_id: client.id.clone(),
            product_id: product.into(),
            amount: Some(Money { minor_units, currency: self.spec.currency.clone() }),
            business_date: Some(Date::from(date)),
            branch_id: client.branch_id.clone(),
            employee_id: seller.into(),
            kind: LineKind::Sale as i32,
        }
    }
}

fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn spec() -> NetworkSpec {
        NetworkSpec {
            seed: 7,
            branches: 4,
            clients: 400,
            months: 24,
            as_of: NaiveDate::from_ymd_opt(2026, 10, 31).expect("date"),
            currency: "PLN".into(),
        }
    }

    #[test]
    fn same_spec_same_network() {
        let (a, b) = (generate(&spec()), generate(&spec()));
        assert_eq!(a.lines, b.lines);
        assert_eq!(a.clients, b.clients);
        let other = generate(&NetworkSpec { seed: 8, ..spec() });
        assert_ne!(a.lines, other.lines);
    }

    #[test]
    fn lines_are_valid_for_the_clients_service() {
        let network = generate(&spec());
        let spec = spec();
        let clients: HashMap<&str, &Client> = network.clients.iter().map(|c| (c.id.as_str(), c)).collect();
        let products: HashSet<&str> = network.products.iter().map(|p| p.id.as_str()).collect();
        let employees: HashSet<&str> = network.employees.iter().map(|e| e.id.as_str()).collect();
        let mut ids = HashSet::new();
        for line in &network.lines {
            assert!(ids.insert(line.id.as_str()), "duplicate id {}", line.id);
            assert!(branchscore_platform::validate::is_valid_id(&line.id) && line.id.len() <= 64, "{}", line.id);
            let client = clients[line.client_id.as_str()];
            assert_eq!(client.branch_id, line.branch_id);
            assert!(products.contains(line.product_id.as_str()) && employees.contains(line.employee_id.as_str()));
            let date = line.business_date.as_ref().and_then(|d| d.to_naive()).expect("date");
            assert!(date <= spec.as_of, "{date} after as-of");
            let amount = line.amount.as_ref().expect("amount").minor_units;
            if line.kind == LineKind::Return as i32 { assert!(amount < 0) } else { assert!(amount > 0) }
        }
    }

    #[test]
    fn behaviours_show_in_the_history() {
        let network = generate(&spec());
        let as_of = spec().as_of;
        let mut last_purchase: HashMap<&str, NaiveDate> = HashMap::new();
        let mut first_purchase: HashMap<&str, NaiveDate> = HashMap::new();
        for line in network.lines.iter().filter(|l| l.kind == LineKind::Sale as i32) {
            let date = line.business_date.as_ref().and_then(|d| d.to_naive()).expect("date");
            let last = last_purchase.entry(&line.client_id).or_insert(date);
            *last = (*last).max(date);
            let first = first_purchase.entry(&line.client_id).or_insert(date);
            *first = (*first).min(date);
        }
        for (client, behaviour) in network.clients.iter().zip(&network.behaviours) {
            let last = last_purchase.get(client.id.as_str());
            match behaviour {
                Behaviour::Prospect => assert!(last.is_none()),
                Behaviour::Churned => assert!(last.is_none_or(|d| (as_of - *d).num_days() > 120), "{client:?}"),
                Behaviour::New => {
                    let first = first_purchase.get(client.id.as_str());
                    assert!(first.is_none_or(|d| (as_of - *d).num_days() < 100), "{client:?}");
                }
                _ => {}
            }
        }
        let returns = network.lines.iter().filter(|l| l.kind == LineKind::Return as i32).count();
        assert!(returns > 0 && returns * 20 < network.lines.len());
        let products: HashSet<&str> = network.products.iter().map(|p| p.id.as_str()).collect();
        for segment in &network.segments {
            assert!(segment.target_product_ids.iter().all(|p| products.contains(p.as_str())), "{segment:?}");
        }
    }
}
