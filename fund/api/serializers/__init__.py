"""What the API sends and what it documents, one module per audience as the views are. Amounts
are decimal strings with exactly the asset's places; inputs are checked by the services, which
name each bad field. The views use them as `serializers.<Name>`, whichever module holds it."""

from fund.api.serializers.admin import (
    AdminActionOut,
    CorrectionIn,
    MoneyMoveIn,
    PreviewOut,
    SettleOut,
)
from fund.api.serializers.fields import Amount, decimal_text
from fund.api.serializers.ingestion import (
    ConflictOut,
    IndexPriceBatchIn,
    IndexPriceIn,
    IntakeItemOut,
    IntakeOut,
    PositionProfitBatchIn,
    PositionProfitIn,
    TakeoverBatchIn,
    TakeoverIn,
)
from fund.api.serializers.public import (
    BucketOut,
    ContractOut,
    CycleOut,
    FundOut,
    KindTotalOut,
    RecordOut,
)
from fund.api.serializers.traders import (
    ComputationOut,
    PositionOut,
    PositionProofOut,
    ProofOut,
    ProofStepOut,
    StatementDetailOut,
    StatementOut,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
)

__all__ = [
    "AdminActionOut", "Amount", "BucketOut", "ComputationOut", "ConflictOut", "ContractOut",
    "CorrectionIn", "CycleOut", "FundOut", "IndexPriceBatchIn", "IndexPriceIn", "IntakeItemOut",
    "IntakeOut", "KindTotalOut",
    "MoneyMoveIn", "PositionOut", "PositionProofOut", "PositionProfitBatchIn", "PositionProfitIn",
    "PreviewOut", "ProofOut",
    "ProofStepOut", "RecordOut", "SettleOut", "StatementDetailOut", "StatementOut",
    "TakeoverBatchIn", "TakeoverIn", "TokenCreatedOut", "TokenIn", "TokenOut", "decimal_text",
]  # fmt: skip
