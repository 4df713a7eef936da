"""An example ERP integration with branchscore over gRPC.

What an ERP does with branchscore, with stubs generated from proto/ at start:

  load      upserts branches, staff, the catalogue and clients, streams a
            half-year of sales lines in batches, then re-sends the first batch
            to show that a retried import changes nothing;
  bonuses   pulls the approved bonuses of a period for the HR/payroll module,
            as records and as CSV.

Credentials: --token (a JWT: `authorization: Bearer`) or --api-key (an
integration key the gateway maps to its principal: `x-api-key`).
Each command ends with one JSON line summarising what happened.

    python erp.py --target 127.0.0.1:50050 --api-key KEY load
    python erp.py --target 127.0.0.1:50050 --api-key KEY bonuses --from 2026-07-01 --to 2026-09-30 --csv payroll.csv
"""

import argparse
import datetime as dt
import importlib
import json
import pathlib
import random
import sys
import tempfile

import grpc
from grpc_tools import protoc

PROTO_ROOT = pathlib.Path(__file__).resolve().parents[2] / "proto"
PROTOS = [
    "branchscore/common/v1/common.proto",
    "branchscore/clients/v1/clients.proto",
    "branchscore/kpi/v1/kpi.proto",
]
BATCH_LINES = 500


def generate_stubs():
    """Generates the Python stubs into a temporary directory and imports them."""
    out = pathlib.Path(tempfile.mkdtemp(prefix="branchscore-stubs-"))
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + [str(PROTO_ROOT / p) for p in PROTOS]) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, str(out))
    modules = {
        name: importlib.import_module(f"branchscore.{path}")
        for name, path in {
            "common": "common.v1.common_pb2",
            "clients": "clients.v1.clients_pb2",
            "clients_grpc": "clients.v1.clients_pb2_grpc",
            "kpi": "kpi.v1.kpi_pb2",
            "kpi_grpc": "kpi.v1.kpi_pb2_grpc",
        }.items()
    }
    return argparse.Namespace(**modules)


def metadata(args):
    if args.api_key:
        return (("x-api-key", args.api_key),)
    return (("authorization", f"Bearer {args.token}"),)


def money(pb, minor_units):
    return pb.common.Money(minor_units=minor_units, currency="PLN")


def date(pb, day):
    return pb.common.Date(year=day.year, month=day.month, day=day.day)


def master_data(pb):
    branches = [
        pb.clients.Branch(id="ERP-WAW", name="Warszawa", region="mazowieckie", currency="PLN"),
        pb.clients.Branch(id="ERP-GDN", name="Gdańsk", region="pomorskie", currency="PLN"),
    ]
    sellers = [f"{b.id}-S{n}" for b in branches for n in (1, 2)]
    employees = [
        pb.clients.Employee(
            id=seller,
            branch_id=seller.rsplit("-", 1)[0],
            full_name=f"Seller {seller}",
            role=pb.common.EMPLOYEE_ROLE_SALES,
            active=True,
        )
        for seller in sellers
    ]
    catalogue = pb.clients.BatchUpsertProductsRequest(
        product_lines=[
            pb.clients.ProductLine(id="ERP-PL-PRINT", name="Print"),
            pb.clients.ProductLine(id="ERP-PL-PACK", name="Packaging"),
        ],
        products=[
            pb.clients.Product(id="ERP-P-FLYER", product_line_id="ERP-PL-PRINT", name="Flyers"),
            pb.clients.Product(id="ERP-P-BOX", product_line_id="ERP-PL-PACK", name="Boxes"),
        ],
    )
    clients = [
        pb.clients.Client(
            id=f"ERP-C{n:03d}",
            name=f"Client {n}",
            kind=pb.common.CLIENT_KIND_B2B,
            size_band=pb.common.SIZE_BAND_SMALL,
            branch_id=sellers[n % len(sellers)].rsplit("-", 1)[0],
            owner_employee_id=sellers[n % len(sellers)],
            known_since=pb.common.Date(year=2025, month=1, day=1),
        )
        for n in range(40)
    ]
    return branches, employees, catalogue, clients


def sales_lines(pb, clients, start, end, seed):
    """Deterministic sales: each client buys every few weeks; all lines are sales."""
    rng = random.Random(seed)
    lines = []
    for client in clients:
        day = start + dt.timedelta(days=rng.randrange(0, 20))
        while day <= end:
            product = rng.choice(["ERP-P-FLYER", "ERP-P-BOX"])
            lines.append(
                pb.clients.TransactionLine(
                    id=f"ERP-L{len(lines):06d}",
                    document_id=f"ERP-D{len(lines):06d}",
                    client_id=client.id,
                    product_id=product,
                    amount=money(pb, rng.randrange(5_000, 150_000)),
                    business_date=date(pb, day),
                    branch_id=client.branch_id,
                    employee_id=client.owner_employee_id,
                    kind=pb.clients.LINE_KIND_SALE,
                )
            )
            day += dt.timedelta(days=rng.randrange(10, 45))
    return lines


def batches(pb, lines):
    for i in range(0, len(lines), BATCH_LINES):
        yield pb.clients.ImportTransactionsRequest(lines=lines[i : i + BATCH_LINES])


def load(pb, channel, args):
    clients_api = pb.clients_grpc.ClientsServiceStub(channel)
    meta = metadata(args)
    branches, employees, catalogue, clients = master_data(pb)
    clients_api.BatchUpsertBranches(pb.clients.BatchUpsertBranchesRequest(branches=branches), metadata=meta)
    clients_api.BatchUpsertEmployees(pb.clients.BatchUpsertEmployeesRequest(employees=employees), metadata=meta)
    clients_api.BatchUpsertProducts(catalogue, metadata=meta)
    reply = clients_api.BatchUpsertClients(pb.clients.BatchUpsertClientsRequest(clients=clients), metadata=meta)
    print(f"master data: {len(branches)} branches, {len(employees)} sellers, {len(clients)} clients "
          f"({reply.created_count} new)")

    end = dt.date.fromisoformat(args.until)
    lines = sales_lines(pb, clients, end - dt.timedelta(days=182), end, args.seed)
    imported = clients_api.ImportTransactions(batches(pb, lines), metadata=meta)
    print(f"sales lines: {imported.accepted} accepted, {imported.duplicates} duplicates, {imported.rejected} rejected")
    # The connection dropped before the ERP saw the reply: it sends the batch again.
    first_batch = lines[:BATCH_LINES]
    again = clients_api.ImportTransactions(batches(pb, first_batch), metadata=meta)
    print(f"first batch re-sent: {again.accepted} accepted, {again.duplicates} duplicates (nothing changed)")
    print(json.dumps({
        "command": "load",
        "lines": len(lines),
        "accepted": imported.accepted,
        "duplicates": imported.duplicates,
        "rejected": imported.rejected,
        "resent": len(first_batch),
        "resent_accepted": again.accepted,
        "resent_duplicates": again.duplicates,
    }))


def bonuses(pb, channel, args):
    kpi_api = pb.kpi_grpc.KpiServiceStub(channel)
    meta = metadata(args)
    first, last = dt.date.fromisoformat(args.period_from), dt.date.fromisoformat(args.period_to)

    def export(fmt):
        request = pb.kpi.ExportPayrollRequest(**{"from": date(pb, first)}, to=date(pb, last), format=fmt)
        return kpi_api.ExportPayroll(request, metadata=meta)

    payroll = [message.line for message in export(pb.kpi.EXPORT_FORMAT_LINES) if message.HasField("line")]
    for line in payroll:
        print(f"  {line.employee_id:<12} {line.full_name:<24} {line.bonus.minor_units / 100:>12,.2f} {line.bonus.currency}"
              f"  (W {line.weighted_attainment:.2f}, version {line.version})")
    csv = b"".join(m.csv_chunk for m in export(pb.kpi.EXPORT_FORMAT_CSV) if m.HasField("csv_chunk"))
    if args.csv:
        pathlib.Path(args.csv).write_bytes(csv)
    print(json.dumps({
        "command": "bonuses",
        "lines": len(payroll),
        "total_minor_units": sum(line.bonus.minor_units for line in payroll),
        "csv_rows": max(csv.count(b"\n") - 1, 0),
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:50050", help="host:port of the gateway (or a service)")
    credentials = parser.add_mutually_exclusive_group(required=True)
    credentials.add_argument("--token", help="a JWT")
    credentials.add_argument("--api-key", help="an integration API key (through the gateway)")
    commands = parser.add_subparsers(dest="command", required=True)
    load_cmd = commands.add_parser("load", help="master data and a half-year of sales")
    load_cmd.add_argument("--until", default="2026-09-30", help="last sales day")
    load_cmd.add_argument("--seed", type=int, default=7)
    bonus_cmd = commands.add_parser("bonuses", help="approved bonuses of a period for payroll")
    bonus_cmd.add_argument("--from", dest="period_from", required=True)
    bonus_cmd.add_argument("--to", dest="period_to", required=True)
    bonus_cmd.add_argument("--csv", help="also write the CSV export here")
    args = parser.parse_args()

    pb = generate_stubs()
    with grpc.insecure_channel(args.target) as channel:
        try:
            {"load": load, "bonuses": bonuses}[args.command](pb, channel, args)
        except grpc.RpcError as err:
            sys.exit(f"{args.command} failed: {err.code().name}: {err.details()}")


if __name__ == "__main__":
    main()
