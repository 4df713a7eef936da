//! The reads behind `GetClientFacts`: clients counted while the sales and
//! class moves are read, on two connections.
use crate::facts::FactsBuilder;
use crate::store::{self, lifecycle};
use branchscore_platform::AppError;
use branchscore_proto::clients::v1::ClientFacts;
use branchscore_scoring::periods::Period;
use sqlx::PgConnection;

/// What facts are asked for.
#[derive(Debug, Clone, Copy)]
pub struct FactsQuery<'a> {
    pub periods: &'a [Period],
    pub lifecycle_months: u32,
    /// Branches the caller may see; `None`: all.
    pub scope: Option<&'a [String]>,
    /// One branch, or ''.
    pub branch_id: &'a str,
    /// One owner or seller, or ''.
    pub employee_id: &'a str,
    pub include_sources: bool,
}

/// The facts of `query`. Clients come from the lifecycle counts when the
/// periods are days, weeks or months (from the first day of one) and the
/// counts are built for the lifecycle period; otherwise (and to list
/// sources) they are counted one by one as their rows arrive. Rollups must
/// be refreshed by the caller.
pub async fn client_facts(
    clients_conn: &mut PgConnection,
    sales_conn: &mut PgConnection,
    query: &FactsQuery<'_>,
    currency: &str,
) -> Result<Vec<ClientFacts>, AppError> {
    let FactsQuery { periods, lifecycle_months, scope, branch_id, employee_id, include_sources } = *query;
    let mut builder = FactsBuilder::new(periods, lifecycle_months, include_sources).map_err(AppError::internal)?;
    let count_clients = async {
        if !include_sources {
            let counted =
                lifecycle::period_counts(clients_conn, periods, lifecycle_months, scope, branch_id, employee_id)
                    .await?;
            if let Some(counted) = counted {
                counted.into_iter().for_each(|counts| builder.add_counts(counts));
                return Ok(());
            }
        }
        let to = periods.last().map_or_else(chrono::NaiveDate::default, |p| p.end);
        store::each_client_purchases(clients_conn, to, scope, branch_id, employee_id, |client| {
            builder.add_client(client)
        })
        .await
        .map(drop)
    };
    // Sales and class moves are small reads, one after the other beside the clients.
    let sales_and_moves = async {
        let sales = store::seller_sales(sales_conn, periods, scope, branch_id, employee_id, include_sources).await?;
        let moves = store::class_moves(sales_conn, periods, scope, branch_id, employee_id, include_sources).await?;
        Ok::<_, sqlx::Error>((sales, moves))
    };
    let (_, (sales, moves)) = tokio::try_join!(count_clients, sales_and_moves)?;
    for sale in &sales {
        builder.add_sale(sale);
    }
    for class_moves in &moves {
        builder.add_class_moves(class_moves);
    }
    Ok(builder.finish(currency))
}
