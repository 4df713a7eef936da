//! Survey versions, and checking answers against the version they answer.
use crate::Feedback;
use crate::store::{self, surveys::SurveyConflict};
use branchscore_platform::client::CallCredentials;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::feedback::v1::*;
use branchscore_scoring::nps::{NPS_MAX, SCALE_MAX, SCALE_MIN};
use std::collections::HashSet;

/// Most items in one survey: the seeds' questionnaires are short.
pub const MAX_ITEMS: usize = 20;
const MAX_COMMENT: usize = 2000;
pub const DEFINERS: &[Role] = &[Role::Admin, Role::HqAnalyst];

pub async fn create_version(
    feedback: &Feedback,
    principal: &Principal,
    credentials: &CallCredentials,
    body: CreateSurveyVersionRequest,
) -> AppResult<CreateSurveyVersionResponse> {
    principal.require(DEFINERS)?;
    let mut v = Violations::new();
    v.id(|| "survey_id".into(), &body.survey_id);
    if !body.product_id.is_empty() {
        v.id(|| "product_id".into(), &body.product_id);
    }
    v.text(|| "name".into(), &body.name, 200);
    v.check(body.items.len() <= MAX_ITEMS, || "items".into(), "at most 20 items");
    v.check(
        !body.items.is_empty() || body.asks_nps || body.asks_csat,
        || "items".into(),
        "a survey must ask something: items, NPS or CSAT",
    );
    let mut codes = HashSet::new();
    for (i, item) in body.items.iter().enumerate() {
        v.id(|| format!("items[{i}].code"), &item.code);
        v.check(codes.insert(&item.code), || format!("items[{i}].code"), "repeats another item's code");
        v.text(|| format!("items[{i}].text"), &item.text, 500);
        v.id(|| format!("items[{i}].touchpoint"), &item.touchpoint);
    }
    v.finish()?;
    if !body.product_id.is_empty() && !feedback.clients.product_ids(credentials).await?.contains(&body.product_id) {
        return Err(AppError::invalid_field("product_id", "unknown product"));
    }
    let draft = SurveyVersion {
        survey_id: body.survey_id,
        version: 0,
        product_id: body.product_id,
        name: body.name.trim().to_owned(),
        items: body
            .items
            .into_iter()
            .map(|i| SurveyItem { code: i.code, text: i.text.trim().to_owned(), touchpoint: i.touchpoint })
            .collect(),
        asks_nps: body.asks_nps,
        asks_csat: body.asks_csat,
        created_by: principal.subject.clone(),
        create_time: None,
    };
    let mut tx = feedback.pool.begin().await?;
    let stored = match store::surveys::create_version(&mut tx, &draft).await? {
        Ok(stored) => stored,
        Err(SurveyConflict::ProductFixed { product_id }) => {
            return Err(AppError::invalid_field(
                "product_id",
                format!("survey {} belongs to product {product_id:?}", draft.survey_id),
            ));
        }
        Err(SurveyConflict::ProductTaken { survey_id }) => {
            return Err(AppError::invalid_field("product_id", format!("the product already has survey {survey_id}")));
        }
    };
    tx.commit().await?;
    tracing::info!(survey = %stored.survey_id, version = stored.version, by = %principal.subject, "survey version stored");
    Ok(CreateSurveyVersionResponse { survey: Some(stored) })
}

pub async fn get(feedback: &Feedback, principal: &Principal, body: GetSurveyRequest) -> AppResult<GetSurveyResponse> {
    principal.require(&Role::ALL)?;
    let mut v = Violations::new();
    v.id(|| "survey_id".into(), &body.survey_id);
    v.check(body.version >= 0, || "version".into(), "must be 0 (the latest) or a version number");
    v.finish()?;
    let number = (body.version > 0).then_some(body.version);
    let survey = store::surveys::version(&feedback.pool, &body.survey_id, number)
        .await?
        .ok_or_else(|| AppError::not_found(format!("survey {} version {}", body.survey_id, body.version)))?;
    Ok(GetSurveyResponse { survey: Some(survey) })
}

pub async fn list(feedback: &Feedback, principal: &Principal) -> AppResult<ListSurveysResponse> {
    principal.require(&Role::ALL)?;
    Ok(ListSurveysResponse { surveys: store::surveys::latest(&feedback.pool).await? })
}

/// Answers checked against their survey version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAnswers {
    /// (code, touchpoint, score).
    pub items: Vec<(String, String, u8)>,
    pub nps: Option<u8>,
    pub csat: Option<u8>,
    pub comment: String,
}

/// Checks `answers` (at `field`) against `survey`: known item codes once
/// each, scores on their scales, NPS and CSAT only when asked, something
/// answered.
pub fn check_answers(
    v: &mut Violations,
    field: &str,
    survey: &SurveyVersion,
    answers: Option<&Answers>,
) -> Option<ValidAnswers> {
    let Some(answers) = answers else {
        v.add(field, "is required");
        return None;
    };
    let before = v.is_empty();
    let mut seen = HashSet::new();
    let mut items = Vec::with_capacity(answers.items.len());
    for (i, answer) in answers.items.iter().enumerate() {
        let at = || format!("{field}.items[{i}]");
        match survey.items.iter().find(|item| item.code == answer.code) {
            None => v.add(
                format!("{}.code", at()),
                format!("survey {} v{} has no item {:?}", survey.survey_id, survey.version, answer.code),
            ),
            Some(item) => {
                v.check(seen.insert(&answer.code), || format!("{}.code", at()), "answers the same item twice");
                let score = u8::try_from(answer.score).ok().filter(|s| (SCALE_MIN..=SCALE_MAX).contains(s));
                v.check(score.is_some(), || format!("{}.score", at()), "must be 1-5");
                if let Some(score) = score {
                    items.push((item.code.clone(), item.touchpoint.clone(), score));
                }
            }
        }
    }
    let nps = answers.nps.and_then(|n| u8::try_from(n).ok().filter(|n| *n <= NPS_MAX));
    if answers.nps.is_some() {
        v.check(survey.asks_nps, || format!("{field}.nps"), "this survey does not ask NPS");
        v.check(nps.is_some(), || format!("{field}.nps"), "must be 0-10");
    }
    let csat = answers.csat.and_then(|c| u8::try_from(c).ok().filter(|c| (SCALE_MIN..=SCALE_MAX).contains(c)));
    if answers.csat.is_some() {
        v.check(survey.asks_csat, || format!("{field}.csat"), "this survey does not ask CSAT");
        v.check(csat.is_some(), || format!("{field}.csat"), "must be 1-5");
    }
    v.check(
        !answers.items.is_empty() || answers.nps.is_some() || answers.csat.is_some(),
        || field.into(),
        "nothing is answered",
    );
    v.check(answers.comment.chars().count() <= MAX_COMMENT, || format!("{field}.comment"), "at most 2000 characters");
    (before && v.is_empty()).then(|| ValidAnswers { items, nps, csat, comment: answers.comment.trim().to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn survey() -> SurveyVersion {
        SurveyVersion {
            survey_id: "S".into(),
            version: 2,
            items: vec![
                SurveyItem { code: "look".into(), text: "Looks".into(), touchpoint: "product".into() },
                SurveyItem { code: "speed".into(), text: "Speed".into(), touchpoint: "delivery".into() },
            ],
            asks_nps: true,
            asks_csat: false,
            ..SurveyVersion::default()
        }
    }

    fn fields(v: Violations) -> Vec<String> {
        v.into_vec().into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn good_answers_pass_with_their_touchpoints() {
        let mut v = Violations::new();
        let answers = Answers {
            items: vec![ItemAnswer { code: "speed".into(), score: 2 }],
            nps: Some(0),
            csat: None,
            comment: " late ".into(),
        };
        let valid = check_answers(&mut v, "answers", &survey(), Some(&answers)).expect("valid");
        assert_eq!(valid.items, [("speed".to_string(), "delivery".to_string(), 2)]);
        assert_eq!((valid.nps, valid.csat, valid.comment.as_str()), (Some(0), None, "late"));
    }

    #[test]
    fn every_problem_is_named() {
        let mut v = Violations::new();
        let answers = Answers {
            items: vec![
                ItemAnswer { code: "look".into(), score: 6 },
                ItemAnswer { code: "look".into(), score: 3 },
                ItemAnswer { code: "price".into(), score: 3 },
            ],
            nps: Some(11),
            csat: Some(4),
            comment: String::new(),
        };
        assert_eq!(check_answers(&mut v, "a", &survey(), Some(&answers)), None);
        assert_eq!(fields(v), ["a.items[0].score", "a.items[1].code", "a.items[2].code", "a.nps", "a.csat"]);
        let mut v = Violations::new();
        assert_eq!(check_answers(&mut v, "a", &survey(), Some(&Answers::default())), None);
        assert_eq!(fields(v), ["a"]);
        let mut v = Violations::new();
        assert_eq!(check_answers(&mut v, "a", &survey(), None), None);
        assert_eq!(fields(v), ["a"]);
    }
}
