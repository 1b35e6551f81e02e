"""Realistic starting data for the emulators: CRM accounts and the ERP item catalog.

The demo and the tests build quotes from these, the way a CPQ would from its price book.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# Salesforce Account records (field names as Salesforce spells them).
ACCOUNTS: list[dict[str, Any]] = [
    {
        "Id": "0015e00000AcmeUS1",
        "Name": "Acme Robotics",
        "Legal_Entity__c": "Acme Robotics, Inc.",
        "Tax_Id__c": "94-1234567",
        "Billing_Email__c": "ap@acme-robotics.example",
        "BillingStreet": "500 Howard St",
        "BillingCity": "San Francisco",
        "BillingState": "CA",
        "BillingPostalCode": "94105",
        "BillingCountryCode": "US",
        "CurrencyIsoCode": "USD",
        "Type": "Customer - Direct",
        "Credit_Check_Status__c": "Approved",
    },
    {
        "Id": "0015e00000NordDE1",
        "Name": "Nordlicht Logistik",
        "Legal_Entity__c": "Nordlicht Logistik GmbH",
        "Tax_Id__c": "DE811907980",
        "Billing_Email__c": "rechnung@nordlicht.example",
        "BillingStreet": "Speicherstadt 12",
        "BillingCity": "Hamburg",
        "BillingState": None,
        "BillingPostalCode": "20457",
        "BillingCountryCode": "DE",
        "CurrencyIsoCode": "EUR",
        "Type": "Customer - Direct",
        "Credit_Check_Status__c": "Approved",
    },
    {
        "Id": "0015e00000ThamGB1",
        "Name": "Thames Analytics",
        "Legal_Entity__c": "Thames Analytics Ltd",
        "Tax_Id__c": "GB123456789",
        "Billing_Email__c": "finance@thames-analytics.example",
        "BillingStreet": "1 Canada Square",
        "BillingCity": "London",
        "BillingState": None,
        "BillingPostalCode": "E14 5AB",
        "BillingCountryCode": "GB",
        "CurrencyIsoCode": "GBP",
        "Type": "Customer - Direct",
        "Credit_Check_Status__c": "Approved",
    },
    {
        "Id": "0015e00000SakuJP1",
        "Name": "Sakura Fintech",
        "Legal_Entity__c": "Sakura Fintech K.K.",
        "Tax_Id__c": "T1234567890123",
        "Billing_Email__c": "keiri@sakura-fintech.example",
        "BillingStreet": "1-1 Marunouchi",
        "BillingCity": "Tokyo",
        "BillingState": "Tokyo",
        "BillingPostalCode": "100-0005",
        "BillingCountryCode": "JP",
        "CurrencyIsoCode": "JPY",
        "Type": "Customer - Direct",
        "Credit_Check_Status__c": "Approved",
    },
    {
        "Id": "0015e00000MapleCA",
        "Name": "Maple Health",
        "Legal_Entity__c": "Maple Health Corp.",
        "Tax_Id__c": "123456789RT0001",
        "Billing_Email__c": "payables@maplehealth.example",
        "BillingStreet": "100 King St W",
        "BillingCity": "Toronto",
        "BillingState": "ON",
        "BillingPostalCode": "M5X 1A9",
        "BillingCountryCode": "CA",
        "CurrencyIsoCode": "CAD",
        "Type": "Prospect",
        "Credit_Check_Status__c": "Approved",
    },
    {
        "Id": "0015e00000NoTaxFR",
        "Name": "Atelier Sans Numero",
        "Legal_Entity__c": "Atelier Sans Numero SAS",
        "Tax_Id__c": None,
        "Billing_Email__c": "compta@atelier.example",
        "BillingStreet": "8 Rue de Rivoli",
        "BillingCity": "Paris",
        "BillingState": None,
        "BillingPostalCode": "75004",
        "BillingCountryCode": "FR",
        "CurrencyIsoCode": "EUR",
        "Type": "Customer - Direct",
        "Credit_Check_Status__c": "Approved",
    },
]

# Accounts a quote can be booked for (the last one lacks the tax id a French customer needs).
BOOKABLE_ACCOUNT_IDS = [a["Id"] for a in ACCOUNTS if a["Tax_Id__c"]]

# NetSuite catalog: item id, SKU (itemId), name, recurring or one-off, list price per currency.
CATALOG: list[dict[str, Any]] = [
    {
        "id": "1101",
        "itemId": "PLAT-CORE",
        "displayName": "Platform Core (per seat / month)",
        "billing": "recurring",
        "prices": {
            "USD": Decimal("45.00"),
            "EUR": Decimal("42.00"),
            "GBP": Decimal("36.00"),
            "JPY": Decimal("6500"),
            "CAD": Decimal("61.00"),
        },
    },
    {
        "id": "1102",
        "itemId": "PLAT-ANALYTICS",
        "displayName": "Analytics Add-on (per seat / month)",
        "billing": "recurring",
        "prices": {
            "USD": Decimal("15.50"),
            "EUR": Decimal("14.25"),
            "GBP": Decimal("12.00"),
            "JPY": Decimal("2200"),
            "CAD": Decimal("21.00"),
        },
    },
    {
        "id": "1103",
        "itemId": "SUPPORT-PREMIUM",
        "displayName": "Premium Support (monthly)",
        "billing": "recurring",
        "prices": {
            "USD": Decimal("499.00"),
            "EUR": Decimal("459.00"),
            "GBP": Decimal("399.00"),
            "JPY": Decimal("72000"),
            "CAD": Decimal("675.00"),
        },
    },
    {
        "id": "2201",
        "itemId": "ONBOARD-STD",
        "displayName": "Standard Onboarding (one-off)",
        "billing": "one_time",
        "prices": {
            "USD": Decimal("2500.00"),
            "EUR": Decimal("2300.00"),
            "GBP": Decimal("1990.00"),
            "JPY": Decimal("360000"),
            "CAD": Decimal("3400.00"),
        },
    },
    {
        "id": "2202",
        "itemId": "TRAINING-DAY",
        "displayName": "Training Day (one-off)",
        "billing": "one_time",
        "prices": {
            "USD": Decimal("1200.00"),
            "EUR": Decimal("1100.00"),
            "GBP": Decimal("950.00"),
            "JPY": Decimal("175000"),
            "CAD": Decimal("1650.00"),
        },
    },
    {
        "id": "1999",
        "itemId": "LEGACY-SEAT",
        "displayName": "Legacy Seat (retired)",
        "billing": "recurring",
        "isInactive": True,
        "prices": {"USD": Decimal("30.00")},
    },
]
